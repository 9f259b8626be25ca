"""summarize_data: the data stage's DVC metrics and two figures (sample crops, fields)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from reconlab.data.fields import SPLITS, load_fields
from reconlab.io import read_csv, read_json, write_json


def data_metrics(prepared: Path) -> dict:
    """Counts per split, rejected files, and field statistics (small: for `dvc metrics diff`)."""
    manifest = read_csv(prepared / "manifest.csv")
    rejected = read_csv(prepared / "rejected.csv")
    index = read_json(prepared / "fields" / "index.json")
    test = load_fields(prepared / "fields", "test")
    per_family = {
        fam: float(test["fields"][test["family"] == i].std())
        if (test["family"] == i).any()
        else 0.0
        for i, fam in enumerate(index["families"])
    }
    return {
        "images": {
            "source": _source_of(manifest),
            "crop_size": int(manifest[0]["width"]) if manifest else 0,
            "crops": dict(Counter(r["split"] for r in manifest)),
            "sources": {s: len({r["source"] for r in manifest if r["split"] == s}) for s in SPLITS},
            "rejected": len(rejected),
        },
        "fields": {
            "size": index["size"],
            "count": {s: index["splits"][s]["count"] for s in SPLITS},
            "test_std_by_family": {k: round(v, 6) for k, v in per_family.items()},
        },
    }


def _source_of(manifest: list[dict]) -> str:
    if manifest and all(r["source"].startswith("skimage:") for r in manifest):
        return "skimage"
    return "folder"


def save_figures(prepared: Path, figures: Path, max_per_split: int = 6) -> None:
    """``samples.png`` (crops, one row per split) and ``fields.png`` (test fields per family)."""
    from PIL import Image

    from reconlab.figures import pyplot, save_figure

    plt = pyplot()
    figures.mkdir(parents=True, exist_ok=True)
    manifest = read_csv(prepared / "manifest.csv")
    fig, axes = plt.subplots(
        len(SPLITS), max_per_split, figsize=(1.8 * max_per_split, 2.0 * len(SPLITS)),
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for row, split in enumerate(SPLITS):
        files = [r for r in manifest if r["split"] == split][:max_per_split]
        for col in range(max_per_split):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(files):
                ax.imshow(Image.open(prepared / files[col]["file"]))
                ax.set_title(files[col]["source"].removeprefix("skimage:"), fontsize=9)
        axes[row, 0].text(
            -0.1, 0.5, split, transform=axes[row, 0].transAxes, ha="right", va="center"
        )
    fig.suptitle("prepared crops (rows: splits)")
    save_figure(fig, figures / "samples.png")

    index = read_json(prepared / "fields" / "index.json")
    test = load_fields(prepared / "fields", "test")
    n_cols = 4
    fams = index["families"]
    fig, axes = plt.subplots(
        len(fams), n_cols, figsize=(1.8 * n_cols + 1.2, 1.8 * len(fams)), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    image = None
    for row, fam in enumerate(fams):
        members = np.flatnonzero(test["family"] == row)[:n_cols]
        for col in range(n_cols):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(members):
                image = ax.imshow(test["fields"][members[col]], cmap="viridis", vmin=0, vmax=1)
        axes[row, 0].set_title(fam, fontsize=9, loc="left")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="field value")
    save_figure(fig, figures / "fields.png")


def summarize_data(prepared: str | Path, metrics_path: str | Path, figures: str | Path) -> dict:
    prepared = Path(prepared)
    metrics = data_metrics(prepared)
    save_figures(prepared, Path(figures))
    write_json(metrics_path, metrics)
    return metrics
