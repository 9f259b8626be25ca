"""Bringing two backbones to the same patch grid (DINOv2 patch 14 vs DINOv3 patch 16)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

RESAMPLE_METHOD = "bilinear, antialiased"


def common_grid(a: Sequence[int], b: Sequence[int], grid: Sequence[int] | None = None) -> list[int]:
    """The grid two backbones are compared at: ``grid`` when given, else the smaller of the two.

    Choosing the smaller grid means only downsampling (averaging) happens: no feature is invented.
    """
    if grid is not None:
        return [int(grid[0]), int(grid[1])]
    a, b = [int(v) for v in a], [int(v) for v in b]
    return a if a[0] * a[1] <= b[0] * b[1] else b


def resample_grid(grid: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    """(N, h, w, D) -> (N, H, W, D) float32, bilinear with antialiasing; unchanged if same size."""
    h, w = int(hw[0]), int(hw[1])
    x = grid.float()
    if tuple(x.shape[1:3]) == (h, w):
        return x
    y = F.interpolate(
        x.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False, antialias=True
    )
    return y.permute(0, 2, 3, 1).contiguous()
