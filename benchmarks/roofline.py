"""What the benchmarks share: the measured matmul peak (the roofline) and the RESULT suffix.

``roofline_frac`` in every RESULT line is achieved FLOP/s over the best n x n matmul this
machine runs in the resolved precision, measured in the same process: how close to the
machine's limit a loop runs, whatever the CPU class. A bf16 peak is measured only where bf16
is the resolved precision (emulated bf16 on an AVX2-only CPU would take minutes to measure).
"""

from __future__ import annotations

import time

import torch


def matmul_peak_tflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Best achieved TFLOP/s of an n x n matmul in ``dtype`` over a few tries."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e12


def training_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward + backward of ``model`` on ``x`` (torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        out.float().mean().backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def result_suffix(compute: dict) -> str:
    """``precision=<resolved> capability=<CPU class or GPU>`` for a RESULT line."""
    return f"precision={compute['precision']} capability={compute['cpu_capability']}"
