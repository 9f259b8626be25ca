"""The ten techniques of the study, each one switch in ``sparse.techniques``.

A cell of the grid is a set of technique names; its settings come from ``sparse.techniques.<name>``
and only the techniques a cell uses enter its parameters (so editing one technique's settings
reruns only the cells that use it). Where each switch acts:

=============  =========================================================================
reflow         loss: after ``start`` of training, regress straight paths between noise and
               the frozen model's own samples (rectified flow, 2-rectification)
multiscale     model: octave Fourier features instead of random ones
consistency    loss: clean-value estimates from two times on one path must agree
fft_loss       loss: non-uniform DFT of the clean estimate at the queries vs. of the truth
adaln          model: AdaLN-Zero time conditioning in the query blocks
self_cond      model + loss: previous clean estimate as an extra input (half the steps)
ema            training: evaluate an exponential moving average of the weights
cosine_t       loss + sampling: t concentrated near 0 and 1, cosine-spaced ODE grid
clip_warmup    training: linear warm-up of the learning rate and gradient-norm clipping
droppath       model: stochastic depth on every residual branch
=============  =========================================================================
"""

from __future__ import annotations

import math

import torch

TECHNIQUES = (
    "reflow",
    "multiscale",
    "consistency",
    "fft_loss",
    "adaln",
    "self_cond",
    "ema",
    "cosine_t",
    "clip_warmup",
    "droppath",
)

DEFAULT_SETTINGS: dict[str, dict] = {
    "reflow": {"start": 0.5, "ode_steps": 4},
    "multiscale": {"octaves": 6},
    "consistency": {"weight": 0.5},
    "fft_loss": {"weight": 0.1, "max_freq": 6},
    "adaln": {},
    "self_cond": {"prob": 0.5},
    "ema": {"decay": 0.995},
    "cosine_t": {},
    "clip_warmup": {"max_norm": 1.0, "warmup": 0.1},
    "droppath": {"rate": 0.1},
}


def check_techniques(names) -> tuple[str, ...]:
    """Validate and order technique names canonically (the order of :data:`TECHNIQUES`)."""
    unknown = sorted(set(names) - set(TECHNIQUES))
    if unknown:
        raise ValueError(f"sparse: unknown technique(s) {unknown}; choose from {list(TECHNIQUES)}")
    return tuple(t for t in TECHNIQUES if t in set(names))


def sample_time(n: int, cosine: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training times t in [0, 1]: uniform, or cosine-warped (denser near both ends)."""
    u = torch.rand(n, generator=generator)
    return (1 - torch.cos(math.pi * u)) / 2 if cosine else u


def time_grid(steps: int, cosine: bool) -> torch.Tensor:
    """ODE integration grid from 0 to 1 (steps + 1 points)."""
    u = torch.linspace(0, 1, steps + 1)
    return (1 - torch.cos(math.pi * u)) / 2 if cosine else u


def nudft(values: torch.Tensor, xy: torch.Tensor, max_freq: int) -> torch.Tensor:
    """Non-uniform DFT of scattered samples: (B, Q), (B, Q, 2) -> (B, K) complex, K=(2m+1)^2.

    Queries are random points, not a grid, so the "FFT" loss compares the Fourier coefficients of
    prediction and truth at the same points, up to ``max_freq`` cycles per field.
    """
    k = torch.arange(-max_freq, max_freq + 1, dtype=xy.dtype, device=xy.device)
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    freqs = torch.stack([ky.flatten(), kx.flatten()], -1)  # (K, 2)
    phase = -2 * math.pi * xy @ freqs.T  # (B, Q, K)
    v = values.unsqueeze(-1)
    return torch.complex((v * phase.cos()).mean(1), (v * phase.sin()).mean(1))


def fft_loss(
    pred: torch.Tensor, target: torch.Tensor, xy: torch.Tensor, max_freq: int
) -> torch.Tensor:
    """Mean squared magnitude of the difference of the two spectra."""
    diff = nudft(pred, xy, max_freq) - nudft(target, xy, max_freq)
    return diff.abs().pow(2).mean()


def warmup_factor(step: int, total: int, warmup_fraction: float) -> float:
    """Linear warm-up multiplier for step (0-based)."""
    w = max(1, int(round(warmup_fraction * total)))
    return min(1.0, (step + 1) / w)
