"""Per-image reconstruction metrics with torchmetrics (data range 1), then mean ± std.

Used by the feature-inversion and tokenizer studies so both report identical definitions.
"""

from __future__ import annotations

import math

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)


@torch.inference_mode()
def per_image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """MAE, MSE, PSNR and SSIM for each image of a batch.

    Args:
        pred: (B, C, H, W) reconstruction in [0, 1] (clamped here).
        target: (B, C, H, W) ground truth in [0, 1].

    Returns:
        dict of (B,) float32 tensors: ``mae``, ``mse``, ``psnr`` (dB), ``ssim``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    pred = pred.float().clamp(0, 1)
    target = target.float()
    mae = (pred - target).abs().flatten(1).mean(1)
    mse = (pred - target).pow(2).flatten(1).mean(1)
    psnr = peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")
    return {"mae": mae, "mse": mse, "psnr": psnr, "ssim": ssim}


def summarize(values: list[float] | torch.Tensor) -> dict[str, float]:
    """mean, std (population) and count of a list of per-image values."""
    t = torch.as_tensor(values, dtype=torch.float64)
    if t.numel() == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(t.mean()), "std": float(t.std(unbiased=False)), "n": int(t.numel())}


def not_computed(reason: str) -> str:
    """The value a metric takes when it needs pretrained weights that are not available."""
    return f"not computed: {reason}"
