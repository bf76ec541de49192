# ruff: noqa: E501  (the choice lists are copied verbatim, one per line)
"""Make the recorded `python -m sglang.launch_server --help` excerpts in this folder.

Not a capture of a live install (sglang is 10 GB): an argparse parser built the way
sglang 0.5.23's `ServerArgs.add_cli_args` builds it, with the choice lists copied verbatim
from the sglang-0.5.23 wheel (sglang/srt/arg_groups/choices.py, fields/*.py,
parser/reasoning_parser_names.py, function_call/parser_names.py), limited to the flags
the serve profiles and the preflight use. `fork` adds what the Blackwell fork line adds:
the `b12x` FP4 GEMM and MoE runner choices, and `--cuda-graph-max-bs` (the model card's
flag; 0.5.23 split it into -decode/-prefill, so there the prefix is ambiguous).
`upstream-b12x` is upstream 0.5.23 with the glm51-sglang-b12x plugin loaded: `b12x` appended to
both choice lists (the plugin extends SGLang's lists), nothing else.

    python tests/data/sglang-help/generate.py upstream > tests/data/sglang-help/upstream-0.5.23.txt
    python tests/data/sglang-help/generate.py fork > tests/data/sglang-help/blackwell-fork.txt
    python tests/data/sglang-help/generate.py upstream-b12x > tests/data/sglang-help/upstream-0.5.23-b12x.txt
"""

import argparse
import os
import sys

# fmt: off
QUANTIZATION_CHOICES = ['awq', 'fp8', 'mxfp8', 'gptq', 'gptq_marlin', 'awq_marlin', 'bitsandbytes', 'gguf', 'modelopt', 'modelopt_fp8', 'modelopt_fp4', 'nvfp4_online', 'modelopt_mixed', 'petit_nvfp4', 'w8a8_int8', 'w8a8_fp8', 'moe_wna16', 'w4afp8', 'mxfp4', 'auto-round', 'auto-round-int8', 'compressed-tensors', 'modelslim', 'mxfp_w4a8', 'quark', 'quark_int4fp8_moe', 'quark_mxfp4', 'mlx_q4', 'mlx_q8', 'unquant', 'humming']
ATTENTION_BACKEND_CHOICES = ['triton', 'torch_native', 'flex_attention', 'dsa', 'nsa', 'qsa', 'dsv4', 'compressed', 'fa3', 'fa4', 'flashinfer', 'llada2_cfg_flashinfer', 'flashmla', 'trtllm_mla', 'cutedsl_mla', 'tokenspeed_mla', 'trtllm_mha', 'hpc_ops', 'minicpm_flashattn', 'minicpm_flashinfer', 'aiter', 'wave', 'intel_amx', 'ascend', 'intel_xpu']
MOE_RUNNER_BACKEND_CHOICES = ['auto', 'deep_gemm', 'triton', 'triton_kernel', 'flashinfer_trtllm', 'experimental_sgl_trtllm', 'flashinfer_trtllm_routed', 'flashinfer_cutlass', 'flashinfer_mxfp4', 'flashinfer_cutedsl', 'flashinfer_megamoe', 'cutlass', 'aiter', 'marlin', 'humming', 'experimental_sgl_marlin', 'lora_cutedsl', 'lora_triton', 'lora_marlin', 'hpc_ops', 'megamoe', 'intel_xpu']
FP4_GEMM_RUNNER_BACKEND_CHOICES = ['auto', 'flashinfer_cudnn', 'flashinfer_cutedsl', 'flashinfer_cutlass', 'flashinfer_trtllm', 'marlin']
REASONING_PARSER_NAMES = ['apertus2509', 'beam', 'deepseek-r1', 'deepseek-v3', 'deepseek-v4', 'deepseek-v41', 'dots', 'glm45', 'ling3', 'hunyuan', 'gpt-oss', 'k2_horizon', 'kimi', 'kimi_k2', 'kimi_k3', 'mimo', 'muse', 'poolside_v1', 'qwen3', 'qwen3-thinking', 'minimax', 'minimax-append-think', 'minimax-m3', 'nanbeige', 'step3', 'step3p5', 'mistral', 'nemotron_3', 'granite_thinking_parser', 'interns1', 'gemma4', 'inkling', 'iquest_q1', 'cohere_command4', 'gigachat35', 'response_template']
TOOL_CALL_PARSER_NAMES = ['apertus2509', 'beam', 'cohere_command4', 'deepseekv3', 'deepseekv31', 'deepseekv32', 'deepseekv4', 'deepseekv41', 'dots', 'glm', 'glm45', 'glm47', 'gpt-oss', 'k2_horizon', 'kimi_k2', 'kimi_k3', 'lfm2', 'ling3', 'llama3', 'mimo', 'minicpm5', 'mistral', 'muse', 'poolside_v1', 'pythonic', 'qwen', 'qwen25', 'qwen3_coder', 'spark25', 'step3', 'step3p5', 'minimax-m2', 'minimax-m3', 'nanbeige', 'trinity', 'interns1', 'hermes', 'hunyuan', 'gigachat3', 'gigachat35', 'gemma4', 'inkling', 'iquest_q1', 'response_template']
KV_CACHE_DTYPE_CHOICES = ['auto', 'fp8_e5m2', 'fp8_e4m3', 'mxfp8', 'bf16', 'bfloat16', 'nvfp4', 'fp4_mx_block16']
# fmt: on


def parser(variant: str) -> argparse.ArgumentParser:
    fork = variant == "fork"
    b12x = ["b12x"] if variant in ("fork", "upstream-b12x") else []
    fp4 = [*FP4_GEMM_RUNNER_BACKEND_CHOICES, *b12x]
    moe = [*MOE_RUNNER_BACKEND_CHOICES, *b12x]
    p = argparse.ArgumentParser(prog="sglang serve")
    a = p.add_argument
    a("--model-path", "--model", type=str, help="Path to model weights.")
    a(
        "--trust-remote-code",
        action="store_true",
        help="Whether or not to allow for custom models defined on the Hub in their own "
        "modeling files.",
    )
    a("--quantization", choices=QUANTIZATION_CHOICES, help="The quantization method.")
    a(
        "--kv-cache-dtype",
        choices=KV_CACHE_DTYPE_CHOICES,
        default="auto",
        help="Data type for kv cache storage.",
    )
    a("--host", default="127.0.0.1", help="The host of the HTTP server.")
    a("--port", type=int, default=30000, help="The port of the HTTP server.")
    a(
        "--served-model-name",
        help="Override the model name returned by the v1/models endpoint in OpenAI API server.",
    )
    a(
        "--tp-size",
        "--tensor-parallel-size",
        type=int,
        default=1,
        help="The tensor parallelism size.",
    )
    # Multi-node (fields/parallel.py): the two-node profile and `glm51 serve --nnodes`.
    a(
        "--pp-size",
        "--pipeline-parallel-size",
        type=int,
        default=1,
        help="The pipeline parallelism size.",
    )
    a(
        "--dist-init-addr",
        "--nccl-init-addr",
        help="The host address for initializing distributed backend (e.g., `192.168.0.2:25000`).",
    )
    a("--nnodes", type=int, default=1, help="The number of nodes.")
    a("--node-rank", type=int, default=0, help="The node rank.")
    a(
        "--mem-fraction-static",
        type=float,
        help="The fraction of the memory used for static "
        "allocation (model weights and KV cache memory pool).",
    )
    a("--max-running-requests", type=int, help="The maximum number of running requests.")
    a(
        "--attention-backend",
        choices=ATTENTION_BACKEND_CHOICES,
        help="Choose the kernels for attention layers.",
    )
    a(
        "--fp4-gemm-backend",
        choices=fp4,
        default="auto",
        help="Choose the runner backend for NVFP4 GEMM operations.",
    )
    a(
        "--moe-runner-backend",
        choices=moe,
        default="auto",
        help="Choose the runner backend for MoE.",
    )
    a(
        "--disable-shared-experts-fusion",
        action="store_true",
        help="Disable the built-in shared experts fusion optimization for DeepSeek V3/R1.",
    )
    a(
        "--enforce-shared-experts-fusion",
        action="store_true",
        help="Enforce shared experts fusion even when it would normally be disabled. "
        "Mutually exclusive with --disable-shared-experts-fusion.",
    )
    if fork:
        a("--cuda-graph-max-bs", type=int, help="Set the maximum batch size for cuda graph.")
    else:
        a(
            "--cuda-graph-max-bs-decode",
            type=int,
            help="Maximum batch size captured for the decode cuda graph.",
        )
        a(
            "--cuda-graph-max-bs-prefill",
            type=int,
            help="Maximum batch size captured for the prefill cuda graph.",
        )
    a(
        "--speculative-algorithm",
        help="Speculative algorithm. Builtins: EAGLE, EAGLE3, NEXTN, "
        "STANDALONE, NGRAM, DFLASH, DSPARK, UNO.",
    )
    a(
        "--speculative-num-steps",
        type=int,
        help="The number of steps sampled from draft model in Speculative Decoding.",
    )
    a(
        "--speculative-eagle-topk",
        type=int,
        help="The number of tokens sampled from the draft model in eagle2 each step.",
    )
    a(
        "--speculative-num-draft-tokens",
        type=int,
        help="The number of tokens sampled from the draft model in Speculative Decoding.",
    )
    a(
        "--reasoning-parser",
        choices=["auto", *REASONING_PARSER_NAMES],
        help=f"Specify the parser for reasoning models. Options include: {REASONING_PARSER_NAMES}.",
    )
    a(
        "--tool-call-parser",
        choices=["auto", *TOOL_CALL_PARSER_NAMES],
        help="Specify the parser for handling tool-call interactions. "
        f"Options include: {TOOL_CALL_PARSER_NAMES}.",
    )
    a("--log-level", default="info", help="The logging level of all loggers.")
    a("--config", help="Read CLI options from a config file.")
    return p


if __name__ == "__main__":
    os.environ["COLUMNS"] = "100"  # a fixed width, so the recording is reproducible
    sys.stdout.write(parser(sys.argv[1]).format_help())
