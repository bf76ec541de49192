"""`glm51 bench`: Short/32K/128K TG and c=32/c=64 throughput, gated on the recipe."""
