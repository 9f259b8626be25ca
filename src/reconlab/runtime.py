"""Device, precision, threads and seeds: one place decides them for every stage (decision 9).

``device: auto`` picks CUDA when present, else CPU. bf16 autocast is used on CPU (AMX / AVX-512
BF16 kernels where the CPU has them) and bf16 or fp16 on CUDA; fp16 needs a GradScaler.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: 'cuda' was asked for but no CUDA GPU is visible; use 'auto'")
    return device


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def dtype_of(name: str) -> torch.dtype:
    try:
        return _DTYPES[name]
    except KeyError:
        raise ValueError(f"precision {name!r} is not one of {sorted(_DTYPES)}") from None


@dataclass(frozen=True)
class Precision:
    """How a stage runs its forward passes: autocast dtype (None = fp32) and grad scaling."""

    device: torch.device
    amp_dtype: torch.dtype | None

    @property
    def needs_scaler(self) -> bool:
        return self.device.type == "cuda" and self.amp_dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.needs_scaler)


def precision_for(device: torch.device, name: str = "bf16") -> Precision:
    """``fp32`` disables autocast; ``bf16``/``fp16`` enable it (fp16 on CPU falls back to bf16)."""
    if name == "fp32":
        return Precision(device, None)
    dtype = dtype_of(name)
    if device.type == "cpu" and dtype == torch.float16:
        dtype = torch.bfloat16  # CPU autocast has no fast fp16 path
    return Precision(device, dtype)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch Generator for explicit draws."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(num_threads: int | None = None) -> int:
    """Use every core this process may run on (or ``num_threads``) for intra-op parallelism."""
    n = num_threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n
