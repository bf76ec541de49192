"""The OpenAI-compatible endpoint: health, models, chat completions (whole and streamed,
with timing), prompts sized in server tokens, and `--launch` of `glm51 serve`."""
