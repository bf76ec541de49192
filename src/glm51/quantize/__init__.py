"""`glm51 quantize`: NVFP4 with ModelOpt, calibration data, expert coverage, estimates."""
