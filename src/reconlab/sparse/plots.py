"""Figures of the sparse-query study: per-cell sample grids and the improvement heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reconlab.figures import pyplot, save_figure


def sample_grid(
    path: str | Path,
    truth: np.ndarray,
    pred: np.ndarray,
    masks: np.ndarray,
    labels: list[str],
    title: str,
) -> None:
    """One row per field: observed pixels / truth / prediction (clamped) / |error|, two colorbars."""
    from reconlab.evaluation.image_metrics import psnr_per_image  # torchmetrics: ~3 CPU-s import

    plt = pyplot()
    n = len(truth)
    fig, axes = plt.subplots(
        n, 4, figsize=(8.4, 2.0 * n + 0.8), squeeze=False, layout="constrained"
    )
    images = {}
    for i in range(n):
        observed = np.full(truth[i].size, np.nan)
        observed[masks[i]] = truth[i].ravel()[masks[i]]
        clamped = np.clip(pred[i], 0, 1)
        err = np.abs(clamped - truth[i])
        psnr = float(psnr_per_image(clamped[None], truth[i][None])[0])
        panels = [
            (observed.reshape(truth[i].shape), "observed", (0, 1)),
            (truth[i], "truth", (0, 1)),
            (clamped, f"pred {psnr:.1f} dB", (0, 1)),
            (err, "|error|", (0, 0.5)),
        ]
        for ax, (img, name, (lo, hi)) in zip(axes[i], panels, strict=True):
            kind = "error" if name == "|error|" else "value"
            cmap = "magma" if kind == "error" else "viridis"
            images[kind] = ax.imshow(img, vmin=lo, vmax=hi, cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name if i == 0 or name.startswith("pred") else "")
        axes[i, 0].set_ylabel(labels[i])
    fig.colorbar(images["value"], ax=axes[:, :3], shrink=0.8, label="field value")
    fig.colorbar(images["error"], ax=axes[:, 3], shrink=0.8, label="|error|")
    fig.suptitle(title)
    save_figure(fig, path)


def improvement_heatmap(
    path: str | Path, cells: list[str], families: list[str], gains: np.ndarray, title: str
) -> None:
    """Cells x families heatmap of PSNR gain over the baseline cell (dB), values in each square.

    Numbers are white on dark squares and black on light ones; the layout is constrained, so
    long cell names are never clipped.
    """
    plt = pyplot()
    fig, ax = plt.subplots(
        figsize=(1.1 * len(families) + 4.5, 0.42 * len(cells) + 2.0), layout="constrained"
    )
    finite = np.abs(gains[np.isfinite(gains)]) if gains.size else np.array([])
    lim = max(1e-3, float(finite.max())) if finite.size else 1.0
    im = ax.imshow(gains, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(families)), families, rotation=30, ha="right")
    ax.set_yticks(range(len(cells)), cells)
    for (r, c), v in np.ndenumerate(gains):
        if np.isfinite(v):
            dark = abs(v) > 0.6 * lim  # the ends of RdBu are dark
            ax.text(c, r, f"{v:+.1f}", ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, label="PSNR gain over baseline (dB)")
    ax.set_title(title)
    save_figure(fig, path)
