"""CUDA's division by a Python number, simulated on the CPU (test scaffolding).

PyTorch's CUDA kernel for `tensor / number` computes `tensor * (1 / number)` in the op's
math type (`BinaryDivTrueKernel.cu`, "may lose one bit of precision"); the CPU divides.
Measured on an H200 (torch 2.11.0+cu130): 223,225 of 1,000,000 random FP32 values differ
for a divisor of 2688, and amax 0.0810546875 / 2688 gives 3.0154275009e-05 there against
3.0154273190e-05 on the CPU. A tensor divisor on the device divides exactly on both.

`reciprocal_scalar_division()` makes every division of a floating tensor by a Python
number on the CPU behave as on CUDA, so a CPU test can show that a code path's bytes do
not depend on it. What it cannot simulate: a 0-dim CPU tensor divisor of a CUDA tensor
(CUDA treats it as a number too); the code under test uses divisors on the numerator's
device.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_OPMATH = {torch.bfloat16: torch.float32, torch.float16: torch.float32}


def _is_number(b) -> bool:
    return isinstance(b, numbers.Real) and not isinstance(b, bool)


def _reciprocal_times(a: torch.Tensor, b) -> torch.Tensor:
    math = _OPMATH.get(a.dtype, a.dtype)
    inv = torch.tensor(1.0, dtype=math) / torch.tensor(float(b), dtype=math)
    return (a.to(math) * inv).to(a.dtype)


@contextmanager
def reciprocal_scalar_division() -> Iterator[list[int]]:
    """While active, `t / x`, `t /= x`, `t.div(x)`, `t.div_(x)`, `torch.div(t, x)`
    (also `true_divide`, `divide`) with a Python number x multiply by fl(1/x). Yields a
    one-element list counting the divisions it rewrote."""
    seen = [0]
    saved_tensor = {
        n: getattr(torch.Tensor, n) for n in ("__truediv__", "__itruediv__", "div", "div_")
    }
    saved_torch = {n: getattr(torch, n) for n in ("div", "true_divide", "divide")}

    def wrap(original, inplace: bool = False):
        def div(a, b, *args, **kwargs):
            if (
                not args
                and not kwargs
                and isinstance(a, torch.Tensor)
                and a.is_floating_point()
                and _is_number(b)
            ):
                seen[0] += 1
                result = _reciprocal_times(a, b)
                return a.copy_(result) if inplace else result
            return original(a, b, *args, **kwargs)

        return div

    try:
        for name, fn in saved_tensor.items():
            setattr(torch.Tensor, name, wrap(fn, inplace=name in ("__itruediv__", "div_")))
        for name, fn in saved_torch.items():
            setattr(torch, name, wrap(fn))
        yield seen
    finally:
        for name, fn in saved_tensor.items():
            setattr(torch.Tensor, name, fn)
        for name, fn in saved_torch.items():
            setattr(torch, name, fn)
