"""File names a checkpoint folder holds, named once (light: CLI help texts use them)."""

MANIFEST = "glm51-manifest.json"  # per-file and per-tensor digests: what verify and publish trust
