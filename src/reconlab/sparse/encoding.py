"""Fourier-feature coordinate encodings: fixed random, learnable, multi-scale."""

from __future__ import annotations

import math

import torch
from torch import nn

KINDS = ("fixed", "learnable", "multiscale")


class FourierFeatures(nn.Module):
    """gamma(p) = [sin(2 pi p B), cos(2 pi p B)] followed by a linear projection to ``width``.

    Args:
        kind: ``fixed`` (B ~ N(0, scale^2), a buffer), ``learnable`` (same init, a parameter) or
            ``multiscale`` (octave frequencies 1, 2, 4, ... along 4 directions: every scale from
            the whole field down to ~2 pixels is present by construction).
        features: number of frequencies (columns of B); multiscale uses ``4 * octaves``.
        scale: std of the random frequencies, in cycles per field (3 fits 1-4-cycle fields).
        octaves: multiscale only: number of octaves.
    """

    def __init__(
        self,
        width: int,
        kind: str = "fixed",
        features: int = 32,
        scale: float = 3.0,
        octaves: int = 6,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"sparse.model.fourier.kind: {kind!r}; choose one of {list(KINDS)}")
        if kind == "multiscale":
            f = 2.0 ** torch.arange(octaves, dtype=torch.float32)
            d = 1 / math.sqrt(2)
            dirs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [d, d], [d, -d]])  # (4, 2)
            b = torch.einsum("dk,f->kdf", dirs, f).reshape(2, -1)
        else:
            b = torch.randn(2, features, generator=generator) * scale
        if kind == "learnable":
            self.B = nn.Parameter(b)
        else:
            self.register_buffer("B", b)
        self.proj = nn.Linear(2 * b.shape[1], width)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        """xy: (..., 2) in [0, 1] -> (..., width)."""
        p = 2 * math.pi * xy @ self.B
        return self.proj(torch.cat([p.sin(), p.cos()], -1))
