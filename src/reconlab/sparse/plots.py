"""Figures of the sparse-query study: per-cell sample grids and the improvement heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reconlab.io import atomic_path


def sample_grid(
    path: str | Path,
    truth: np.ndarray,
    pred: np.ndarray,
    masks: np.ndarray,
    labels: list[str],
    title: str,
) -> None:
    """One row per field: observed pixels / truth / prediction (clamped) / |error|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(truth)
    fig, axes = plt.subplots(n, 4, figsize=(6.4, 1.7 * n + 0.4), squeeze=False)
    for i in range(n):
        observed = np.full(truth[i].size, np.nan)
        observed[masks[i]] = truth[i].ravel()[masks[i]]
        err = np.abs(np.clip(pred[i], 0, 1) - truth[i])
        mse = float((err**2).mean())
        panels = [
            (observed.reshape(truth[i].shape), "observed", (0, 1)),
            (truth[i], "truth", (0, 1)),
            (np.clip(pred[i], 0, 1), f"pred {10 * np.log10(1 / max(mse, 1e-12)):.1f} dB", (0, 1)),
            (err, "|error|", (0, 0.5)),
        ]
        for ax, (img, name, (lo, hi)) in zip(axes[i], panels, strict=True):
            ax.imshow(img, vmin=lo, vmax=hi, cmap="viridis" if name != "|error|" else "magma")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name if i == 0 or name.startswith("pred") else "", fontsize=7)
        axes[i, 0].set_ylabel(labels[i], fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def improvement_heatmap(
    path: str | Path, cells: list[str], families: list[str], gains: np.ndarray, title: str
) -> None:
    """Cells x families heatmap of PSNR gain over the baseline cell (dB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(families) + 3, 0.32 * len(cells) + 1.5))
    lim = max(1e-3, float(np.nanmax(np.abs(gains)))) if gains.size else 1.0
    im = ax.imshow(gains, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(families)), families, rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(cells)), cells, fontsize=7)
    for (r, c), v in np.ndenumerate(gains):
        ax.text(c, r, f"{v:+.1f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, label="PSNR gain over baseline (dB)")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
