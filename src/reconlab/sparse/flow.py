"""Conditional flow matching over query values: the loss and ODE sampling.

Path: x_t = (1 - t) x_0 + t x_1 with x_0 ~ N(0, I) (noise) and x_1 the true values at the
queries; the target velocity is u = x_1 - x_0. The network output is read either as the velocity
(``prediction: velocity``; clean estimate x_1_hat = x_t + (1 - t) v) or as the clean values
(``prediction: data``; v = (x_1_hat - x_t) / (1 - t), the same straight-path flow with an
x_1-space loss, which learns much faster on this task). Sampling integrates dx/dt = v from
t = 0 to 1 with torchdiffeq.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from reconlab.sparse.task import Batch

SOLVERS = {"euler": "euler", "heun": "midpoint", "rk4": "rk4", "dopri5": "dopri5"}


PREDICTIONS = ("velocity", "data")
_MIN_GAP = 0.02  # 1 - t is clamped here when converting a clean estimate into a velocity


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


def predict(model: nn.Module, batch: Batch, x_t, t, cond, prediction: str):
    """(velocity, clean estimate) at (x_t, t) under either output parameterisation."""
    out, base = model(batch.obs_xy, batch.obs_val, batch.query_xy, x_t, t, cond)
    gap = (1 - t[:, None]).clamp_min(_MIN_GAP)
    if prediction == "data":
        out = out + base  # the clean estimate: the prior's base (0 without one) + a correction
        return (out - x_t) / gap, out
    if prediction == "velocity":
        return out, x_t + (1 - t[:, None]) * out
    raise ValueError(f"sparse.model.prediction: {prediction!r}; choose one of {list(PREDICTIONS)}")


class LossTerms(NamedTuple):
    total: torch.Tensor
    flow: torch.Tensor
    extra: dict  # name -> tensor (consistency, fft)


def straight_path(
    x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t and the target velocity for the straight (rectified) path; t: (B,)."""
    tt = t[:, None]
    return (1 - tt) * x0 + tt * x1, x1 - x0


def flow_matching_loss(
    model: nn.Module,
    batch: Batch,
    techniques: dict,
    generator: torch.Generator | None = None,
    teacher: nn.Module | None = None,
    prediction: str = "velocity",
) -> LossTerms:
    """The conditional flow-matching loss with whichever loss-side techniques are switched on.

    Args:
        techniques: technique name -> settings, only the active ones.
        teacher: reflow only: frozen model whose samples replace the data as x_1.
    """
    q = batch.query_val
    b = q.shape[0]
    x0 = torch.randn(q.shape, generator=generator).to(q.device)
    x1 = q
    if teacher is not None:
        steps = techniques["reflow"]["ode_steps"]
        with torch.no_grad():
            x1 = sample_values(teacher, batch, steps, "euler", x0, techniques, None, prediction)
    t = sample_time(b, "cosine_t" in techniques, generator).to(q.device)
    x_t, target = straight_path(x0, x1, t)
    cond = None
    if (
        "self_cond" in techniques
        and torch.rand((), generator=generator) < techniques["self_cond"]["prob"]
    ):
        with torch.no_grad():
            cond = predict(model, batch, x_t, t, None, prediction)[1]
    v, x1_hat = predict(model, batch, x_t, t, cond, prediction)
    flow = F.mse_loss(x1_hat, x1) if prediction == "data" else F.mse_loss(v, target)
    extra = {}
    if "consistency" in techniques:
        # a second point on the same path must give the same clean estimate
        t2 = sample_time(b, "cosine_t" in techniques, generator).to(q.device)
        x_t2, _ = straight_path(x0, x1, t2)
        with torch.no_grad():
            x1_hat2 = predict(model, batch, x_t2, t2, cond, prediction)[1]
        extra["consistency"] = techniques["consistency"]["weight"] * F.mse_loss(x1_hat, x1_hat2)
    if "fft_loss" in techniques:
        s = techniques["fft_loss"]
        extra["fft"] = s["weight"] * fft_loss(x1_hat, x1, batch.query_xy, s["max_freq"])
    total = flow + sum(extra.values())
    return LossTerms(total, flow, extra)


@torch.no_grad()
def sample_values(
    model: nn.Module,
    batch: Batch,
    steps: int,
    method: str = "euler",
    x0: torch.Tensor | None = None,
    techniques: dict | None = None,
    generator: torch.Generator | None = None,
    prediction: str = "velocity",
) -> torch.Tensor:
    """Integrate the learned velocity from noise to values at ``batch.query_xy``: (B, Q).

    ``method``: euler | heun (torchdiffeq midpoint, 2 evaluations per step) | rk4 | dopri5
    (adaptive; ``steps`` is ignored).
    """
    from torchdiffeq import odeint

    techniques = techniques or {}
    if method not in SOLVERS:
        raise ValueError(f"sparse.sampler.method: {method!r}; choose one of {sorted(SOLVERS)}")
    if x0 is None:
        x0 = torch.randn(batch.query_xy.shape[:2], generator=generator)
    x0 = x0.to(batch.query_xy.device)
    self_cond = "self_cond" in techniques
    state = {"cond": None}

    def velocity(t, x):
        tt = t.expand(x.shape[0])
        v, x1_hat = predict(model, batch, x, tt, state["cond"], prediction)
        if self_cond:
            state["cond"] = x1_hat
        return v

    if method == "dopri5":
        grid = torch.tensor([0.0, 1.0], device=x0.device)
        out = odeint(velocity, x0, grid, method="dopri5", rtol=1e-4, atol=1e-4)
    else:
        grid = time_grid(steps, "cosine_t" in techniques).to(x0.device)
        out = odeint(velocity, x0, grid, method=SOLVERS[method])
    return out[-1]
