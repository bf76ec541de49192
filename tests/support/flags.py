"""The model card's launch flags, as `glm51 serve` renders them for the default profile."""

MODEL_CARD_FLAGS = (
    "--served-model-name GLM-5.1 --reasoning-parser glm45 --tool-call-parser glm47 --tp 8 "
    "--trust-remote-code --quantization modelopt_fp4 --kv-cache-dtype bf16 "
    "--fp4-gemm-backend b12x --attention-backend flashinfer --moe-runner-backend b12x "
    "--disable-shared-experts-fusion --mem-fraction-static 0.85 --max-running-requests 64 "
    "--cuda-graph-max-bs 32 --speculative-algorithm NEXTN --speculative-num-steps 3 "
    "--speculative-eagle-topk 1 --speculative-num-draft-tokens 4 --host 0.0.0.0 --port 5000"
)
