"""What a checkpoint on disk is: folder, safetensors headers, layer layout, Hub cache."""
