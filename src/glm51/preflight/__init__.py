"""Preflight: GPUs, checkpoint, flags and installed SGLang checked before serving."""
