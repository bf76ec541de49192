"""`glm51 fidelity`: KL of the NVFP4 checkpoint's next-token distribution against BF16."""
