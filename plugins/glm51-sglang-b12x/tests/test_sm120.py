"""On the Blackwell runner only (SM120/SM121): the b12x kernel through the plugin's path
against b12x's reference at GLM-5.1 shapes, and CUDA-graph capture and replay."""

from __future__ import annotations

import pytest
import torch


def _sm12x() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] == 12


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not _sm12x(), reason="b12x kernels need an SM120/SM121 GPU (compute capability 12.x)"
    ),
]

E, H, INTER, TOP_K = 256, 6144, 256, 8  # GLM-5.1, one TP8 rank


@pytest.fixture(scope="module")
def glm_moe():
    from glm51_sglang_b12x.prep import build_moe

    from .conftest import make_checkpoint_expert_tensors, sglang_loaded

    ckpt = make_checkpoint_expert_tensors(e=E, h=H, i=INTER, seed=1)
    ckpt = {k: v.cuda() for k, v in ckpt.items()}
    moe = build_moe(
        sglang_loaded(ckpt, up_first=True),
        params_dtype=torch.bfloat16,
        top_k=TOP_K,
        buckets=(1, 4, 8, 64, 4096),
        device="cuda",
    )
    return ckpt, moe


def _inputs(m: int, seed: int):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(m, H, generator=g, device="cuda").to(torch.bfloat16)
    ids = torch.stack([torch.randperm(E, generator=g, device="cuda")[:TOP_K] for _ in range(m)])
    w = torch.softmax(torch.randn(m, TOP_K, generator=g, device="cuda"), dim=-1)
    return x, w, ids


@pytest.mark.parametrize("m", [1, 4, 8, 64, 4096])
def test_kernel_matches_reference_at_glm51_shapes(glm_moe, m):
    from .test_prep import _reference_from_checkpoint

    ckpt, moe = glm_moe
    x, w, ids = _inputs(m, m)
    got = moe.forward(x, w, ids).float()
    rows = slice(0, min(m, 64))  # the per-token reference is slow: check the first rows
    want = _reference_from_checkpoint(ckpt, x[rows], ids[rows].long(), w[rows], E, H, INTER)
    rel = (got[rows] - want).abs().max().item() / want.abs().max().item()
    assert rel < 2e-2


def test_cuda_graph_capture_and_replay(glm_moe):
    _, moe = glm_moe
    x, w, ids = _inputs(8, 3)
    eager = moe.forward(x, w, ids).clone()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = moe.forward(x, w, ids)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)
    x2, w2, ids2 = _inputs(8, 4)
    x.copy_(x2), w.copy_(w2), ids.copy_(ids2)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, moe.forward(x2, w2, ids2))
