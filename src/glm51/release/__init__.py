"""The release as ordered, resumable steps (`glm51 release`, `nox -s release`)."""
