"""File names a checkpoint folder holds, and verify's defaults, named once (light: CLI help
texts and defaults use them)."""

MANIFEST = "glm51-manifest.json"  # per-file and per-tensor digests: what verify and publish trust

# verify --source: how many NVFP4 experts the deep check samples, and the largest relative
# L2 error between a dequantized expert and its BF16 source that it accepts.
DEEP_EXPERTS = 8
DEEP_MAX_ERROR = 0.25
DEEP_MAX_ERROR_LIMIT = 10.0  # a relative L2 error above this would accept anything
