"""summarize-diagnostics: a few scalars per backbone and per compared pair -> metrics JSON.

Torch-free on purpose (no torch or matplotlib import): it only reads the stage's JSON results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconlab.io import read_json, write_json
from reconlab.provenance import summarize_compute

SUMMARY_KEYS = (
    "smoothness_mean",
    "retrieval_recall_at_1_cls",
    "retrieval_recall_at_1_mean",
    "retrieval_map_cls",
    "retrieval_map_mean",
    "retrieval_recall_at_1_cls_removed",
    "retrieval_recall_at_1_mean_removed",
    "retrieval_map_cls_removed",
    "retrieval_map_mean_removed",
    "reference_same_image_mean",
    "reference_other_images_mean",
)


def summarize(
    backbone_metrics: Sequence[Path], comparisons: Sequence[Path], out: Path
) -> dict[str, Any]:
    """metrics/diagnostics.json: a few scalars per backbone and per compared pair (for DVC)."""
    summary: dict[str, Any] = {"backbones": {}, "compare": {}}
    records = [read_json(path) for path in backbone_metrics]
    summary["compute"] = summarize_compute(records)  # device, precision, CPU class, torch
    for m in records:
        row = {k: m[k] for k in SUMMARY_KEYS if k in m}
        row.update(untrained=m["untrained"], weights=m["weights"])
        summary["backbones"][m["backbone_id"]] = row
    for path in comparisons:
        c = read_json(path)
        summary["compare"]["--".join(c["backbones"])] = {
            "grid_cells": c["grid"][0] * c["grid"][1],
            "untrained": c["untrained"],
            **{
                f"smoothness_mean_equal_grid_{name}": e["smoothness_mean_equal_grid"]
                for name, e in c["per_backbone"].items()
            },
        }
    write_json(out, summary)
    return summary
