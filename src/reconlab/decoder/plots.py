"""Figures of the feature-inversion study: samples, side-by-side comparisons, loss curves.

Saved through :func:`reconlab.figures.save_figure`: anything made from an untrained backbone
carries its one UNTRAINED banner (decision 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reconlab.figures import integer_ticks, log_axis, pyplot, save_figure
from reconlab.io import atomic_path

GRID_ROWS = 4


def _hwc(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) uint8 tensor -> (H, W, 3) numpy array."""
    return image.permute(1, 2, 0).contiguous().numpy()


def save_png(image: torch.Tensor, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(_hwc(image)).save(tmp, format="PNG")


def _figure(rows: int, cols: int, cell: float = 2.2):
    plt = pyplot()
    fig, axes = plt.subplots(
        rows, cols, figsize=(cell * cols, cell * rows + 0.4), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def compare_pred_target(
    pred: torch.Tensor, target: torch.Tensor, psnr: float, path: Path, untrained: bool = False
) -> None:
    """Target | prediction side by side, PSNR in the title."""
    fig, axes = _figure(1, 2, cell=3.0)
    axes[0, 0].imshow(_hwc(target))
    axes[0, 0].set_title("target")
    axes[0, 1].imshow(_hwc(pred))
    axes[0, 1].set_title("decoder")
    fig.suptitle(f"PSNR {psnr:.2f} dB")
    save_figure(fig, path, untrained)


def comparison_grid(
    samples: dict[str, torch.Tensor],
    psnr: Sequence[float],
    path: Path,
    title: str,
    untrained: bool = False,
) -> None:
    """One row per test image (the first :data:`GRID_ROWS`): target, decoder, bicubic
    thumbnail, mean image. Every sample is also saved alone (``samples/``) for the report's
    viewer, so the grid stays a few MB even at 224 px inputs."""
    columns = [("target", "target"), ("pred", "decoder"), ("bicubic", "bicubic thumbnail"),
               ("mean", "mean train image")]  # fmt: skip
    n = min(len(samples["target"]), GRID_ROWS)
    fig, axes = _figure(max(n, 1), len(columns), cell=1.9)
    for r in range(n):
        for c, (key, label) in enumerate(columns):
            axes[r, c].imshow(_hwc(samples[key][r]))
            if r == 0:
                axes[r, c].set_title(label)
        axes[r, 1].text(
            0.02, 0.02, f"{psnr[r]:.1f} dB", transform=axes[r, 1].transAxes, color="w",
            fontsize=10, bbox={"facecolor": "k", "alpha": 0.6, "pad": 1},
        )  # fmt: skip
    fig.suptitle(title)
    save_figure(fig, path, untrained)


def loss_plot(log: Sequence[dict], path: Path, title: str, untrained: bool = False) -> None:
    """Per-epoch train and val loss (log scale) from ``train_log.csv`` rows; whole-epoch ticks."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [int(r["epoch"]) for r in log]
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        values = [float(r[key]) for r in log]
        if values and not all(math.isnan(v) for v in values):
            ax.plot(epochs, values, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    log_axis(ax, "y")
    integer_ticks(ax)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    save_figure(fig, path, untrained)
