"""Local smoothness of a patch grid: mean cosine similarity of each patch with its 4 neighbours."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def neighbour_similarity(grid: torch.Tensor) -> torch.Tensor:
    """Per-patch mean cosine similarity with the (up to) 4 edge-adjacent patches.

    Border patches average over the neighbours they have (3 on an edge, 2 in a corner), so a
    constant grid scores exactly 1 everywhere.

    Args:
        grid: (N, h, w, D) patch features (any float dtype; computed in float32).

    Returns:
        (N, h, w) float32 similarities in [-1, 1]; NaN where a patch has no neighbour (1x1 grid).
    """
    if grid.ndim != 4:
        raise ValueError(f"expected a (N, h, w, D) patch grid, got shape {tuple(grid.shape)}")
    x = F.normalize(grid.float(), dim=-1)
    n, h, w, _ = x.shape
    total = torch.zeros(n, h, w)
    count = torch.zeros(1, h, w)
    horizontal = (x[:, :, 1:] * x[:, :, :-1]).sum(-1)  # (N, h, w-1): patch (i, j) with (i, j+1)
    vertical = (x[:, 1:] * x[:, :-1]).sum(-1)  # (N, h-1, w): patch (i, j) with (i+1, j)
    total[:, :, :-1] += horizontal
    total[:, :, 1:] += horizontal
    total[:, :-1] += vertical
    total[:, 1:] += vertical
    count[:, :, :-1] += 1
    count[:, :, 1:] += 1
    count[:, :-1] += 1
    count[:, 1:] += 1
    return total / count  # 0 / 0 -> NaN for a patch without neighbours


def smoothness_per_image(grid: torch.Tensor) -> torch.Tensor:
    """(N,) mean of :func:`neighbour_similarity` over each image's patches."""
    return neighbour_similarity(grid).flatten(1).mean(1)
