"""Reference-patch maps: cosine similarity of one patch to every patch of a set of images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def reference_cell(grid_hw: Sequence[int], point: Sequence[float]) -> tuple[int, int]:
    """The patch (row, col) at fractional image position ``point`` = (y, x) in [0, 1].

    Fractions, not patch indices, so the same params pick the same image location on a 16x16
    DINOv2 grid and a 14x14 DINOv3 grid; (0.5, 0.5) is the centre (row h // 2, col w // 2).
    """
    h, w = (int(v) for v in grid_hw)
    y, x = (float(v) for v in point)
    if not (0.0 <= y <= 1.0 and 0.0 <= x <= 1.0):
        raise ValueError(f"diagnostics.reference_point: {list(point)} is outside [0, 1] x [0, 1]")
    return min(int(y * h), h - 1), min(int(x * w), w - 1)


def reference_maps(grid: torch.Tensor, image: int, cell: Sequence[int]) -> torch.Tensor:
    """Cosine similarity of patch ``cell`` of image ``image`` to every patch of every image.

    Args:
        grid: (N, h, w, D) patch features.
        image: index of the image holding the reference patch.
        cell: (row, col) of the reference patch.

    Returns:
        (N, h, w) float32 in [-1, 1]; entry [image, row, col] is 1.
    """
    x = F.normalize(grid.float(), dim=-1)
    row, col = cell
    ref = x[image, row, col]
    return torch.einsum("nhwd,d->nhw", x, ref)
