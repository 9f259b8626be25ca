"""Figures of the feature-inversion study: samples, side-by-side comparisons, loss curves.

Anything made from an untrained backbone carries "UNTRAINED" in its title (decision 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reconlab.io import atomic_path


def _hwc(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) uint8 tensor -> (H, W, 3) numpy array."""
    return image.permute(1, 2, 0).contiguous().numpy()


def save_png(image: torch.Tensor, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(_hwc(image)).save(tmp, format="PNG")


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def _figure(rows: int, cols: int, cell: float = 2.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        rows, cols, figsize=(cell * cols, cell * rows + 0.4), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def untrained_tag(untrained: bool) -> str:
    return " — UNTRAINED backbone (random weights)" if untrained else ""


def compare_pred_target(
    pred: torch.Tensor, target: torch.Tensor, psnr: float, path: Path, untrained: bool = False
) -> None:
    """Target | prediction side by side, PSNR in the title."""
    fig, axes = _figure(1, 2, cell=3.0)
    axes[0, 0].imshow(_hwc(target))
    axes[0, 0].set_title("target")
    axes[0, 1].imshow(_hwc(pred))
    axes[0, 1].set_title("decoder")
    fig.suptitle(f"PSNR {psnr:.2f} dB{untrained_tag(untrained)}", fontsize=10)
    _save_figure(fig, path)


def comparison_grid(
    samples: dict[str, torch.Tensor],
    psnr: Sequence[float],
    path: Path,
    title: str,
    untrained: bool = False,
) -> None:
    """One row per test image: target, decoder, bicubic thumbnail, mean image."""
    columns = [("target", "target"), ("pred", "decoder"), ("bicubic", "bicubic thumbnail"),
               ("mean", "mean train image")]  # fmt: skip
    n = len(samples["target"])
    fig, axes = _figure(max(n, 1), len(columns))
    for r in range(n):
        for c, (key, label) in enumerate(columns):
            axes[r, c].imshow(_hwc(samples[key][r]))
            if r == 0:
                axes[r, c].set_title(label, fontsize=9)
        axes[r, 1].text(
            0.02, 0.02, f"{psnr[r]:.1f} dB", transform=axes[r, 1].transAxes, color="w",
            fontsize=8, bbox={"facecolor": "k", "alpha": 0.5, "pad": 1},
        )  # fmt: skip
    fig.suptitle(f"{title}{untrained_tag(untrained)}", fontsize=10)
    _save_figure(fig, path)


def loss_plot(log: Sequence[dict], path: Path, title: str, untrained: bool = False) -> None:
    """Per-epoch train and val loss (log scale) from ``train_log.csv`` rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [int(r["epoch"]) for r in log]
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        values = [float(r[key]) for r in log]
        if values and not all(math.isnan(v) for v in values):
            ax.plot(epochs, values, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{title}{untrained_tag(untrained)}", fontsize=9)
    _save_figure(fig, path)
