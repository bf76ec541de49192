"""Names and pins shared by the plugin's modules (no SGLang import here)."""

BACKEND = "b12x"
SGLANG_VERSION = "0.5.23"
B12X_VERSION = "1.5.1"
# b12x's NVFP4 recipe for a ModelOpt checkpoint; "w13" is b12x's kernel-native FC1 order,
# [up; gate] rows (a gate-first "w31" source is flipped in place on first use: we avoid that).
QUANT_MODE = "nvfp4"
SOURCE_FORMAT = "modelopt_nvfp4"
W13_LAYOUT = "w13"
