"""summarize-decoder: every backbone's metrics.json -> the comparison table and metrics/decoder.json.

Torch-free on purpose: a job that only reads JSON must not pay torch's import (about 2 s of CPU
per process on a 2-core EPYC).
"""

from __future__ import annotations

from pathlib import Path

from reconlab.io import read_json, write_csv, write_json
from reconlab.provenance import summarize_compute

SUMMARY_KEYS = (
    "psnr",
    "ssim",
    "mae",
    "baseline_bicubic_psnr",
    "baseline_mean_psnr",
    "gain_over_bicubic_db",
    "gain_over_mean_db",
)


def summarize_study(metric_files: list[Path], metrics_out: Path, table_out: Path) -> list[dict]:
    """One row per backbone: the comparison table (CSV) and the small DVC metrics file."""
    rows = []
    for path in metric_files:
        m = read_json(path)
        row = {"backbone": m["backbone_id"], "weights": m["weights"], "untrained": m["untrained"]}
        row.update({k: m[k] for k in SUMMARY_KEYS})
        row.update({"baseline_bicubic_ssim": m["baseline_bicubic_ssim"], "verdict": m["verdict"]})
        rows.append(row)
    write_csv(table_out, rows, list(rows[0]) if rows else ["backbone"])
    small = {r["backbone"]: {k: round(float(r[k]), 4) for k in SUMMARY_KEYS} for r in rows}
    small["compute"] = summarize_compute(read_json(path) for path in metric_files)
    write_json(metrics_out, small)
    return rows
