"""The one way every stage makes and saves a figure (matplotlib, Agg backend).

Every PNG the pipeline writes goes through :func:`save_figure`, which holds them to one
standard so they read at 100 % zoom in the report:

* saved at :data:`DPI` (2x a 100-dpi screen; the report shows them at half their pixel size),
  atomically (temporary name, then rename: a killed job leaves no half-written PNG);
* no visible text under :data:`MIN_FONT_PT` points, no overlapping tick labels, a colorbar for
  every scalar map (an ``imshow`` of a 2-D array) — measured on the drawn figure by
  :func:`audit` and stored in the PNG as a ``reconlab-figure`` text chunk, which
  :func:`read_audit` returns and the report tests check on every figure of a smoke run;
* one UNTRAINED marker (:func:`mark_untrained`) on anything computed from random weights
  (ARCHITECTURE decision 4).

Usage::

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ...
    integer_ticks(ax)                       # epochs, rounds: no 0.5 ticks
    save_figure(fig, path, untrained=weights)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reconlab.io import atomic_path

DPI = 200
MIN_FONT_PT = 9.0
PAD_INCHES = 0.05  # white margin around the tight box of a saved figure
AUDIT_KEY = "reconlab-figure"
UNTRAINED_TEXT = "UNTRAINED — random weights ({}): not a pretrained result"
UNTRAINED_COLOR = "#c0392b"
STYLE = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 11,
    "figure.dpi": 100,
    "savefig.dpi": DPI,
}


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend with the pipeline's font sizes (>= 9 pt)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def untrained_weights(weights: bool | str | Iterable[str] | None) -> list[str]:
    """The random-weights identities among ``weights`` (True means "untrained, unnamed")."""
    if weights is None or weights is False:
        return []
    if weights is True:
        return ["random"]
    if isinstance(weights, str):
        weights = [weights]
    return sorted({str(w) for w in weights if str(w).startswith("random")})


def mark_untrained(fig, weights: bool | str | Iterable[str] | None) -> bool:
    """Put the red UNTRAINED banner at the top of ``fig`` once; True when it was added.

    ``weights``: a weights identity, several, or a bool; only ``random...`` identities count.
    """
    random = untrained_weights(weights)
    if not random or getattr(fig, "_reconlab_untrained", False):
        return False
    from matplotlib.transforms import ScaledTranslation

    # Above the figure's top edge, lifted by more than the box padding, so it never covers a
    # title; bbox_inches="tight" grows the saved PNG to include it.
    lift = ScaledTranslation(0, 6 / 72, fig.dpi_scale_trans)
    fig.text(
        0.5,
        1.0,
        UNTRAINED_TEXT.format(", ".join(random)),
        ha="center",
        va="bottom",
        color="white",
        weight="bold",
        fontsize=MIN_FONT_PT + 1,
        bbox={"facecolor": UNTRAINED_COLOR, "edgecolor": "none", "pad": 3},
        transform=fig.transFigure + lift,
    )
    fig._reconlab_untrained = True
    return True


def integer_ticks(ax, axis: str = "x") -> None:
    """Only whole numbers on ``axis`` (epochs, rounds, counts)."""
    from matplotlib.ticker import MaxNLocator

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(MaxNLocator(integer=True))


def log_axis(ax, axis: str = "x", base: int = 10) -> None:
    """A log ``axis`` labelled with plain numbers at a few ticks (1, 2, 5 per decade for base
    10), with unlabelled minor ticks: the crowded, overlapping minor labels never appear."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=base)
    subs = (1.0, 2.0, 5.0) if base == 10 else (1.0,)
    target.set_major_locator(LogLocator(base=base, subs=subs, numticks=8))
    fmt = ScalarFormatter()
    fmt.set_scientific(False)
    target.set_major_formatter(fmt)
    target.set_minor_formatter(NullFormatter())


def _drawn_texts(fig) -> list:
    """The Text artists that are drawn: visible, non-empty, on a shown axis."""
    texts = [t for t in fig.texts]
    if fig._suptitle is not None and fig._suptitle not in texts:
        texts.append(fig._suptitle)
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            texts += legend.get_texts()
            texts.append(legend.get_title())
        if ax.axison:
            for axis in (ax.xaxis, ax.yaxis):
                if axis.get_visible():
                    texts.append(axis.label)
                    texts += _tick_labels(ax, axis)
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def _tick_labels(ax, axis) -> list:
    """Tick labels of ticks inside the view interval (major and minor)."""
    lo, hi = sorted(axis.get_view_interval())
    index = 0 if axis is ax.xaxis else 1
    out = []
    for minor in (False, True):
        for t in axis.get_ticklabels(minor=minor):
            pos = t.get_position()[index]
            if t.get_visible() and t.get_text().strip() and lo <= pos <= hi:
                out.append(t)
    return out


def _overlaps(labels: list, renderer) -> list[str]:
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in labels]
    bad = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            if box_a.overlaps(box_b) and box_a.intersection(box_a, box_b).width > 0.5:
                bad.append(f"{a!r} / {b!r}")
    return bad


def _overlapping_text(fig, renderer) -> list[str]:
    """Figure-level texts (banner, suptitle, headers) and axes titles that cover each other."""
    texts = [*fig.texts]
    if fig._suptitle is not None and fig._suptitle not in texts:
        texts.append(fig._suptitle)
    texts += [ax.title for ax in fig.axes if ax.get_visible()]
    texts = [t for t in dict.fromkeys(texts) if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text()[:30], t.get_window_extent(renderer)) for t in texts]
    bad = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            if box_a.overlaps(box_b):
                inter = box_a.intersection(box_a, box_b)
                if inter is not None and inter.width > 0.5 and inter.height > 0.5:
                    bad.append(f"{a!r} / {b!r}")
    return bad


def _maps_without_colorbar(fig) -> list[str]:
    """Scalar maps (imshow of a 2-D array) whose colour scale no colorbar explains."""
    images = [im for ax in fig.axes for im in ax.images]
    explained = set()
    for im in images:
        if getattr(im, "colorbar", None) is not None:
            explained.add((im.get_cmap().name, im.norm.vmin, im.norm.vmax))
    missing = []
    for im in images:
        array = im.get_array()
        if array is None or array.ndim != 2:
            continue  # RGB(A) images carry their own colours
        key = (im.get_cmap().name, im.norm.vmin, im.norm.vmax)
        if key not in explained:
            title = im.axes.get_title() or "untitled axes"
            missing.append(f"{title} ({key[0]}, {key[1]:.3g}..{key[2]:.3g})")
    return sorted(set(missing))


def audit(fig) -> dict[str, Any]:
    """Measure the drawn figure: smallest font, overlapping tick labels, unexplained maps.

    Returns ``{"dpi", "size_in": [w, h], "min_font_pt", "small_text": [...],
    "overlapping_ticks": [...], "overlapping_text": [...], "maps_without_colorbar": [...],
    "untrained_marker": bool}``;
    the lists are empty for a figure that meets the standard.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = _drawn_texts(fig)
    sizes = [float(t.get_fontsize()) for t in texts]
    small = sorted({f"{t.get_text()[:40]!r} {t.get_fontsize():g}pt" for t in texts
                    if t.get_fontsize() < MIN_FONT_PT})  # fmt: skip
    overlapping = []
    for ax in fig.axes:
        if ax.get_visible() and ax.axison:
            for axis in (ax.xaxis, ax.yaxis):
                overlapping += _overlaps(_tick_labels(ax, axis), renderer)
    return {
        "dpi": DPI,
        "size_in": [round(float(v), 2) for v in fig.get_size_inches()],
        "min_font_pt": min(sizes) if sizes else None,
        "small_text": small,
        "overlapping_ticks": overlapping,
        "overlapping_text": _overlapping_text(fig, renderer),
        "maps_without_colorbar": _maps_without_colorbar(fig),
        "untrained_marker": bool(getattr(fig, "_reconlab_untrained", False)),
    }


def save_figure(
    fig, path: str | Path, untrained: bool | str | Iterable[str] | None = None
) -> dict[str, Any]:
    """Mark (if untrained), audit, and write ``fig`` as a PNG at :data:`DPI`; close it.

    Args:
        fig: a matplotlib Figure (from :func:`pyplot`).
        path: the PNG to write (atomically; parent folders are created).
        untrained: weights identity/identities or a bool; random weights add the banner.

    Returns:
        The :func:`audit` of the figure, also stored in the PNG (``reconlab-figure`` chunk).
    """
    import matplotlib.pyplot as plt

    mark_untrained(fig, untrained)
    # One layout pass serves both the audit and the PNG: the audit draws at the saved
    # resolution, its renderer gives the tight box, and the layout engine (constrained, tight)
    # is then switched off so savefig neither re-runs it nor draws once more to find the box
    # itself (what bbox_inches="tight" does). Three draws become two: about 0.5-1 s less per
    # figure, over a few dozen figures per run.
    fig.set_dpi(DPI)
    result = audit(fig)
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(PAD_INCHES)
    fig.set_layout_engine("none")
    with atomic_path(Path(path)) as tmp:
        fig.savefig(
            tmp,
            format="png",
            dpi=DPI,
            bbox_inches=box,
            metadata={AUDIT_KEY: json.dumps(result, sort_keys=True)},
        )
    plt.close(fig)
    return result


def read_audit(path: str | Path) -> dict[str, Any] | None:
    """The audit stored in a PNG by :func:`save_figure`; None for a PNG saved another way."""
    from PIL import Image

    with Image.open(path) as im:
        raw = getattr(im, "text", {}).get(AUDIT_KEY)
    return json.loads(raw) if raw else None
