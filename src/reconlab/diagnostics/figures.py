"""Figures of the diagnostics, saved by :func:`reconlab.figures.save_figure` (Agg, 2x dpi, one
UNTRAINED banner on every figure from random weights, a colorbar on every scalar map).

Maps are drawn on the image's pixel extent, one square per patch (nearest neighbour), so a
14-pixel and a 16-pixel patch grid line up with the image they describe.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch

from reconlab.figures import pyplot, save_figure

plt = pyplot()
from matplotlib.patches import Rectangle  # noqa: E402

REFERENCE_CMAP = "RdBu_r"


def _colorbar(fig: plt.Figure, image, axes, label: str) -> None:
    """One horizontal colorbar under a column of maps that share ``image``'s colour scale."""
    fig.colorbar(image, ax=list(axes), location="bottom", shrink=0.9, pad=0.02, label=label)


def _image(ax: plt.Axes, image: torch.Tensor) -> None:
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())


def _map(
    ax: plt.Axes, grid_map: torch.Tensor, extent_hw: Sequence[int], **kw
) -> matplotlib.image.AxesImage:
    """A (h, w) or (h, w, 3) map stretched over an image of ``extent_hw`` pixels."""
    height, width = extent_hw
    return ax.imshow(
        np.asarray(grid_map), extent=(0, width, height, 0), interpolation="nearest", **kw
    )


def _mark_cell(ax: plt.Axes, cell: Sequence[int], grid: Sequence[int], extent_hw: Sequence[int]):
    ch, cw = extent_hw[0] / grid[0], extent_hw[1] / grid[1]
    ax.add_patch(
        Rectangle((cell[1] * cw, cell[0] * ch), cw, ch, fill=False, edgecolor="lime", linewidth=1.5)
    )


def _grid_axes(rows: int, cols: int, titles: Sequence[str], top: float):
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.3 * rows + 1.2), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, title in zip(axes[0], titles, strict=True):
        ax.set_title(title, fontsize=9)
    fig.subplots_adjust(top=top, bottom=0.02, left=0.02, right=0.98, wspace=0.05, hspace=0.08)
    return fig, axes


def plot_backbone_maps(
    path: Path,
    images: torch.Tensor,
    pca_rgb: torch.Tensor,
    foreground: torch.Tensor,
    foreground_rgb: torch.Tensor,
    reference: torch.Tensor,
    reference_image: int,
    cell: Sequence[int],
    header: str,
    weights: str,
) -> None:
    """Rows = images; columns: image | PCA | foreground mask | foreground PCA | reference map."""
    n = images.shape[0]
    extent = images.shape[-2:]
    grid = pca_rgb.shape[1:3]
    titles = ["image", "PCA 1-3 (joint)", "foreground", "PCA on foreground", "reference cosine"]
    fig, axes = _grid_axes(n, 5, titles, top=1 - 1.0 / (2.3 * n + 1.2))
    for i in range(n):
        _image(axes[i, 0], images[i])
        _map(axes[i, 1], pca_rgb[i], extent)
        fg = _map(axes[i, 2], foreground[i].float(), extent, cmap="gray", vmin=0, vmax=1)
        _map(axes[i, 3], foreground_rgb[i], extent)
        ref = _map(axes[i, 4], reference[i], extent, cmap=REFERENCE_CMAP, vmin=-1, vmax=1)
        if i == reference_image:
            _mark_cell(axes[i, 4], cell, grid, extent)
            _mark_cell(axes[i, 0], cell, grid, extent)
    _colorbar(fig, fg, axes[:, 2], "foreground (1) / background (0)")
    _colorbar(fig, ref, axes[:, 4], "cosine with the marked patch")
    fig.text(0.5, 1 - 0.45 / (2.3 * n + 1.2), header, ha="center", va="top", fontsize=9)
    save_figure(fig, path, [weights])


def plot_smoothness(
    path: Path, per_patch: torch.Tensor, per_image: torch.Tensor, header: str, weights: str
) -> None:
    """Histogram of per-patch neighbour similarity, with each image's mean as a tick."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    values = per_patch[torch.isfinite(per_patch)].numpy()
    ax.hist(values, bins=40, range=(-1, 1), color="#34699a")
    for v in per_image.numpy():
        ax.axvline(v, color="#e67e22", alpha=0.5, linewidth=1)
    mean = float(np.mean(values)) if values.size else float("nan")
    ax.axvline(mean, color="black", linestyle="--", label=f"mean {mean:.3f}")
    ax.set_xlabel("mean cosine similarity with the 4 neighbours (per patch); orange: per image")
    ax.set_ylabel("patches")
    ax.set_title(header, fontsize=9)
    ax.legend()
    fig.subplots_adjust(top=0.8, bottom=0.13)
    save_figure(fig, path, [weights])


def plot_comparison(
    path: Path,
    images: torch.Tensor,
    pca: Sequence[torch.Tensor],
    reference: Sequence[torch.Tensor],
    names: Sequence[str],
    lines: Sequence[str],
    reference_image: int,
    cell: Sequence[int],
    weights: Sequence[str],
) -> None:
    """Rows = images; columns: image | PCA a | PCA b | reference a | reference b (equal grids)."""
    n = images.shape[0]
    extent = images.shape[-2:]
    grid = pca[0].shape[1:3]
    a, b = names
    titles = ["image", f"{a} PCA", f"{b} PCA", f"{a} reference", f"{b} reference"]
    extra = 0.35 * len(lines) + 0.6
    fig, axes = plt.subplots(n, 5, figsize=(11.5, 2.3 * n + extra), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, title in zip(axes[0], titles, strict=True):
        ax.set_title(title, fontsize=9)
    height = 2.3 * n + extra
    fig.subplots_adjust(
        top=1 - extra / height, bottom=0.02, left=0.02, right=0.98, wspace=0.05, hspace=0.08
    )
    for i in range(n):
        _image(axes[i, 0], images[i])
        _map(axes[i, 1], pca[0][i], extent)
        _map(axes[i, 2], pca[1][i], extent)
        _map(axes[i, 3], reference[0][i], extent, cmap=REFERENCE_CMAP, vmin=-1, vmax=1)
        ref = _map(axes[i, 4], reference[1][i], extent, cmap=REFERENCE_CMAP, vmin=-1, vmax=1)
        if i == reference_image:
            for col in (0, 3, 4):
                _mark_cell(axes[i, col], cell, grid, extent)
    _colorbar(fig, ref, axes[:, 3:5].ravel(), "cosine with the marked patch")
    fig.text(0.5, 1 - 0.45 / height, "\n".join(lines), ha="center", va="top", fontsize=9)
    save_figure(fig, path, weights)
