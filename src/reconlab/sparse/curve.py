"""The learning curve: PSNR on the reported split against training examples seen.

Cells evaluated along training (the baseline cell and the final cell: their config's
``curve_steps``) store ``curve`` in their metrics, one point per evaluation step; here the points
are averaged over seeds into CSV rows and drawn, one panel per family plus the mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from reconlab.figures import pyplot, save_figure


def curve_rows(label: str, runs: Sequence[Mapping], families: Sequence[str]) -> list[dict]:
    """One row per evaluation step of ``runs`` (seed metrics with ``curve``): the mean over seeds
    of PSNR overall (``psnr``) and per family (``psnr_<family>``), with ``examples`` seen.

    Raises ValueError when a run has no curve or the seeds were evaluated at different steps.
    """
    curves = [r.get("curve") for r in runs]
    if not runs or any(not c for c in curves):
        raise ValueError(f"sparse learning curve: cell {label!r} has a seed without 'curve'")
    steps = [p["step"] for p in curves[0]]
    if any([p["step"] for p in c] != steps for c in curves):
        raise ValueError(f"sparse learning curve: the seeds of {label!r} differ in their steps")
    rows = []
    for i, step in enumerate(steps):
        points = [c[i] for c in curves]
        row = {
            "cell": label,
            "step": step,
            "examples": points[0]["examples"],
            "seeds": len(points),
            "psnr": round(float(np.mean([p["psnr"] for p in points])), 4),
        }
        for f in families:
            row[f"psnr_{f}"] = round(float(np.mean([p["psnr_by_family"][f] for p in points])), 4)
        rows.append(row)
    return rows


def endpoints(rows: Sequence[Mapping]) -> dict[str, dict]:
    """{cell: its last row} (the trained model's point of each curve)."""
    return {r["cell"]: dict(r) for r in rows}


def learning_curve_figure(
    path: str | Path, rows: Sequence[Mapping], families: Sequence[str], title: str
) -> None:
    """Panels 'all families' + one per family: PSNR (dB) against examples seen (log axis),
    one line per cell."""
    from matplotlib.ticker import NullFormatter

    plt = pyplot()
    panels = ["all", *families]
    cols = 4
    n_rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(
        n_rows, cols, figsize=(3.2 * cols, 2.7 * n_rows + 0.6), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    for ax, panel in zip(axes.flat, panels, strict=False):
        key = "psnr" if panel == "all" else f"psnr_{panel}"
        for cell in cells:
            pts = [r for r in rows if r["cell"] == cell]
            ax.plot([r["examples"] for r in pts], [r[key] for r in pts], marker="o", label=cell)
        ax.set_xscale("log")
        # Decade labels only: minor labels (4x10^0, 6x10^0) overlap on a short axis.
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title("mean of all families" if panel == "all" else panel)
        ax.set_xlabel("training examples seen")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    axes.flat[0].legend()
    fig.suptitle(title)
    save_figure(fig, path)
