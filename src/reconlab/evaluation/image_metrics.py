"""Per-image reconstruction metrics with torchmetrics (data range 1), then mean ± std.

Used by every study (feature inversion, tokenizer, sparse query, the report's viewer) so all
report identical definitions; the formulas are torchmetrics'.

Non-finite policy (one rule, everywhere): PSNR is capped at :data:`PSNR_MAX_DB` = 100 dB, the
PSNR of an MSE of 1e-10 at data range 1. An exact reconstruction (MSE 0, PSNR +inf by
definition) therefore counts as 100 dB, and results state how many images were capped
(:func:`count_capped`, stored as ``psnr_capped``) next to the cap itself. Any other non-finite
per-image value (NaN from a diverged model) is refused by :func:`summarize` rather than
averaged, and :func:`reconlab.io.write_json` refuses to write NaN/inf, naming the key.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

PSNR_MAX_DB = 100.0  # 10 * log10(1 / 1e-10): the stand-in for an exact reconstruction's +inf


def cap_psnr(psnr: torch.Tensor | np.ndarray | float) -> torch.Tensor | np.ndarray | float:
    """``psnr`` (dB) with +inf and anything above :data:`PSNR_MAX_DB` set to the cap (NaN stays)."""
    if isinstance(psnr, torch.Tensor):
        return psnr.clamp(max=PSNR_MAX_DB)
    if isinstance(psnr, np.ndarray):
        return np.minimum(psnr, PSNR_MAX_DB)
    return min(float(psnr), PSNR_MAX_DB) if not math.isnan(psnr) else psnr


def count_capped(psnr: torch.Tensor | np.ndarray | list[float]) -> int:
    """How many values of ``psnr`` (dB) sit at the cap: exact (or near-exact) reconstructions."""
    return int((np.asarray(psnr, dtype=np.float64) >= PSNR_MAX_DB).sum())


def psnr_per_image(
    pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray
) -> torch.Tensor | np.ndarray:
    """PSNR (dB, data range 1) of each item of a batch over all its other dims, capped at
    :data:`PSNR_MAX_DB`; torchmetrics' ``peak_signal_noise_ratio``, 10 log10(1 / MSE).

    Args:
        pred, target: (B, ...) arrays of the same shape, values in [0, 1] (``pred`` is used as
            given: clamp it first for the clamped PSNR). NumPy in gives NumPy out (float64).
    """
    as_numpy = isinstance(pred, np.ndarray)
    p, t = torch.as_tensor(pred), torch.as_tensor(target)
    if p.shape != t.shape:
        raise ValueError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} differ")
    if not p.is_floating_point():
        p, t = p.float(), t.float()
    dims = tuple(range(1, p.ndim)) if p.ndim > 1 else None
    psnr = peak_signal_noise_ratio(p, t.to(p.dtype), data_range=1.0, reduction="none", dim=dims)
    psnr = cap_psnr(psnr.reshape(p.shape[:1]) if dims else psnr)
    return psnr.numpy() if as_numpy else psnr


@torch.inference_mode()
def per_image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """MAE, MSE, PSNR and SSIM for each image of a batch.

    Args:
        pred: (B, C, H, W) reconstruction in [0, 1] (clamped here).
        target: (B, C, H, W) ground truth in [0, 1].

    Returns:
        dict of (B,) float32 tensors: ``mae``, ``mse``, ``psnr`` (dB, at most
        :data:`PSNR_MAX_DB`: an exact reconstruction gives the cap, not +inf), ``ssim``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    pred = pred.float().clamp(0, 1)
    target = target.float()
    mae = (pred - target).abs().flatten(1).mean(1)
    mse = (pred - target).pow(2).flatten(1).mean(1)
    psnr = psnr_per_image(pred, target)
    ssim = structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")
    return {"mae": mae, "mse": mse, "psnr": psnr, "ssim": ssim}


def summarize(values: list[float] | torch.Tensor, name: str = "metric") -> dict[str, float]:
    """mean, std (population) and count of a list of per-image values.

    Raises:
        ValueError: some values are NaN or infinite (never averaged silently), naming ``name``
            and how many; cap PSNR with :func:`cap_psnr` first. An empty list gives NaN mean
            and std, which :func:`reconlab.io.write_json` refuses, naming the key.
    """
    t = torch.as_tensor(values, dtype=torch.float64)
    if t.numel() == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise ValueError(f"{name}: {bad} of {t.numel()} values are not finite (NaN or inf)")
    return {"mean": float(t.mean()), "std": float(t.std(unbiased=False)), "n": int(t.numel())}


def not_computed(reason: str) -> str:
    """The value a metric takes when it needs pretrained weights that are not available."""
    return f"not computed: {reason}"
