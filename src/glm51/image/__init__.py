"""The serving image: tags, the exact `docker buildx build` argv, and the build runner."""
