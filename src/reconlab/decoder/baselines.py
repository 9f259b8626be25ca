"""Baselines every decoder result is compared with, in the same table.

* **bicubic thumbnail** — the image shrunk to the patch-grid resolution (area average: the
  mean colour of every patch, i.e. what a 16×16×3 thumbnail holds) and upsampled back with
  bicubic interpolation. A decoder that does not beat this has recovered no more than colour
  at the patch scale.
* **mean image** — the mean training image, predicted for every test image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def bicubic_thumbnail(images: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> thumbnail at ``grid`` (h, w) -> bicubic back to (H, W), clamped."""
    size = tuple(images.shape[-2:])
    thumb = F.interpolate(images.float(), size=tuple(grid), mode="area")
    return F.interpolate(thumb, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def mean_image(images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(3, H, W) float32 mean of (N, 3, H, W) images (uint8 in [0, 255] or float in [0, 1])."""
    if len(images) == 0:
        raise ValueError("mean_image: no training images")
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    total = torch.zeros(images.shape[1:], dtype=torch.float64)
    for start in range(0, len(images), batch):  # chunks: never a float copy of the whole split
        total += images[start : start + batch].to(torch.float64).sum(0)
    return (total / (len(images) * scale)).float()
