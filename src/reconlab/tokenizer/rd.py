"""Rate–distortion curves per quantizer family against JPEG, and where each family beats JPEG.

A family is the quantizer kind (VQ: codebook sizes, latent sizes and factors; FSQ: levels). Its
curve joins its variants' (bpp, PSNR) and (bpp, SSIM) points at the reference resolution,
piecewise linear in log-bpp, as is the JPEG curve of the same photos. Where the two curves'
bpp ranges overlap, the difference family − JPEG is evaluated on a dense log-bpp grid: its sign
changes are the crossing points and its positive stretches the bpp intervals where the family
beats JPEG. A family with one variant is a point: it beats JPEG at that bpp or not. Light
module (no torch): ``reconlab tokenizer-summarize`` imports it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reconlab.figures import log_axis, pyplot, save_figure

METRICS = ("psnr", "ssim")
_GRID = 400  # log-bpp samples of the overlap of two curves


def family_of(variant: str) -> str:
    """``VQ`` or ``FSQ`` from a variant name (``f8x16-K1024``, ``f8-FSQ8.5.5.5``)."""
    return "FSQ" if "-FSQ" in variant else "VQ"


def interp_log(points: list[tuple[float, float]], bpp: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation in log-bpp of ``points`` (bpp, value), sorted here."""
    pts = sorted(points)
    return np.interp(np.log(bpp), np.log([p[0] for p in pts]), [p[1] for p in pts])


def beats_intervals(family: list[tuple[float, float]], jpeg: list[tuple[float, float]]) -> dict:
    """Where the ``family`` curve lies above the ``jpeg`` curve (both (bpp, value) points).

    Returns ``{"compared_bpp": [lo, hi] or None, "beats_bpp": [[lo, hi], ...],
    "crossings_bpp": [...]}``; None/empty when the bpp ranges do not overlap.
    """
    jb = [p[0] for p in jpeg]
    fb = [p[0] for p in family]
    lo, hi = max(min(fb), min(jb)), min(max(fb), max(jb))
    if lo > hi:
        return {"compared_bpp": None, "beats_bpp": [], "crossings_bpp": []}
    if lo == hi:  # one point (a one-variant family) on the JPEG curve
        d = interp_log(family, np.array([lo])) - interp_log(jpeg, np.array([lo]))
        return {"compared_bpp": [lo, hi], "beats_bpp": [[lo, hi]] if d[0] > 0 else [],
                "crossings_bpp": []}  # fmt: skip
    grid = np.exp(np.linspace(np.log(lo), np.log(hi), _GRID))
    diff = interp_log(family, grid) - interp_log(jpeg, grid)
    crossings = []
    for i in np.nonzero(np.sign(diff[:-1]) * np.sign(diff[1:]) < 0)[0]:
        t = diff[i] / (diff[i] - diff[i + 1])  # linear in log-bpp between grid points
        crossings.append(float(np.exp(np.log(grid[i]) + t * (np.log(grid[i + 1] / grid[i])))))
    beats, start = [], None
    bounds = [float(lo), *crossings, float(hi)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        mid = np.exp((np.log(a) + np.log(b)) / 2)
        if (interp_log(family, np.array([mid])) - interp_log(jpeg, np.array([mid])))[0] > 0:
            start = a if start is None else start
            beats.append([start, b])
            start = None
    return {"compared_bpp": [float(lo), float(hi)], "beats_bpp": beats, "crossings_bpp": crossings}


def statement(family: str, metric: str, r: dict) -> str:
    """One sentence: at which bpp (if any) ``family`` beats JPEG in ``metric``."""
    name = metric.upper()
    if r["compared_bpp"] is None:
        return f"{family}: no bpp in common with the JPEG curve ({name} not compared)"
    lo, hi = r["compared_bpp"]
    span = f"{lo:.3g}–{hi:.3g} bpp" if hi > lo else f"{lo:.3g} bpp"
    if not r["beats_bpp"]:
        return f"{family} never beats JPEG in {name} over {span}"
    where = ", ".join(f"{a:.3g}–{b:.3g}" if b > a else f"{a:.3g}" for a, b in r["beats_bpp"])
    return f"{family} beats JPEG in {name} at {where} bpp (compared over {span})"


def rd_summary(rows: list[dict], jpeg: list[dict]) -> dict:
    """Per family: its variants' points and, per metric, where it beats JPEG (+ a sentence).

    ``rows``: summary rows of one resolution (variant, bpp, psnr, ssim); ``jpeg``: JPEG rows of
    the same resolution (bpp, psnr, ssim).
    """
    out = {}
    for fam in sorted({family_of(r["variant"]) for r in rows}):
        pts = sorted((r for r in rows if family_of(r["variant"]) == fam), key=lambda r: r["bpp"])
        entry: dict = {"variants": [r["variant"] for r in pts]}
        for m in METRICS:
            r = beats_intervals([(p["bpp"], p[m]) for p in pts], [(j["bpp"], j[m]) for j in jpeg])
            entry[m] = {**r, "statement": statement(fam, m, r)}
        out[fam] = entry
    return out


def plot_rd(rows: list[dict], jpeg: list[dict], summary: dict, res: int, path: Path) -> None:
    """``rd_curve.png``: PSNR and SSIM vs bpp, one line per family, the JPEG curve in grey."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    curve = sorted(jpeg, key=lambda r: r["bpp"])
    for ax, m in zip(axes, METRICS, strict=True):
        ax.plot([r["bpp"] for r in curve], [r[m] for r in curve], "-", color="0.45",
                label="JPEG (Pillow)")  # fmt: skip
        for fam, marker in zip(summary, "os^Dv", strict=False):
            pts = sorted((r for r in rows if family_of(r["variant"]) == fam),
                         key=lambda r: r["bpp"])  # fmt: skip
            ax.plot([p["bpp"] for p in pts], [p[m] for p in pts], f"{marker}-", ms=7, label=fam)
            for p in pts:
                ax.annotate(p["variant"], (p["bpp"], p[m]), xytext=(4, 4),
                            textcoords="offset points", fontsize=9)  # fmt: skip
            for x in summary[fam][m]["crossings_bpp"]:
                ax.axvline(x, color="0.6", ls=":", lw=1)
        log_axis(ax)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("PSNR (dB)" if m == "psnr" else "SSIM")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Rate–distortion per quantizer family vs JPEG ({res} px test photos; "
                 "dotted: crossings)")  # fmt: skip
    save_figure(fig, path)
