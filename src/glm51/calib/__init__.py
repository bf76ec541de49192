"""The calibration stage: manifests, sources, conversations, built sets, expert coverage
and `glm51 calib`. `quantize` may import it; it never imports `quantize`."""
