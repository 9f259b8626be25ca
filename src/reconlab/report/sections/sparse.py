"""Report section: sparse-query flow matching — best cell vs baselines, ranking, ablation, figures."""

from __future__ import annotations

import pandas as pd

from reconlab.report.context import ReportContext
from reconlab.report.tables import frame_table

TITLE = "Sparse-query reconstruction (5% of pixels, flow matching)"
ORDER = 50

FAMILY_COLUMNS = {
    "family": "field family",
    "final": "final cell PSNR (dB)",
    "best": "grid's best cell PSNR (dB)",
    "baseline": "best baseline PSNR (dB)",
    "gain": "final cell's gain over baseline (dB)",
    "method": "baseline method",
    "limit": "family-aware fit: attainable limit (dB)",
    "stored": "stored-data ablation PSNR (dB)",
    "fixedq": "fixed-query ablation PSNR (dB)",
}
RANKING_COLUMNS = {
    "technique": "technique",
    "gain_db": "gain over baseline cell (dB)",
    "psnr": "PSNR (dB)",
    "psnr_std": "PSNR seed std (dB)",
    "test_gain_db": "test-split gain (dB)",
    "threshold_db": "threshold (2 x seed std, dB)",
    "beneficial": "beneficial",
    "pooled_threshold_db": "pooled threshold (dB)",
    "beneficial_pooled": "beneficial (pooled)",
}
MATRIX_COLUMNS = {
    "cell": "cell",
    "psnr": "PSNR (dB)",
    "psnr_std": "seed std (dB)",
    "round": "round",
    "psnr_unclamped": "unclamped PSNR (dB)",
    "corr": "correlation",
    "train_seconds": "train time (s)",
    "parameters": "parameters",
}


def render(ctx: ReportContext) -> str | None:
    root = ctx.results / "sparse"
    if not (root / "summary.json").exists():
        return None
    s = ctx.read_json(root / "summary.json")
    fixedq = s.get("fixed_query_ablation_psnr_by_family") or {}
    stored = s.get("stored_data_ablation_psnr_by_family") or {}
    final = (s.get("final_cell") or {}).get("psnr_by_family") or {}
    families = pd.DataFrame(
        {
            "family": list(s["best_psnr_by_family"]),
            "best": list(s["best_psnr_by_family"].values()),
            "baseline": [s["best_baseline_psnr_by_family"][f] for f in s["best_psnr_by_family"]],
            "method": [s["best_baseline_method_by_family"][f] for f in s["best_psnr_by_family"]],
            "fixedq": [fixedq.get(f) for f in s["best_psnr_by_family"]],
            "stored": [stored.get(f) for f in s["best_psnr_by_family"]],
            "final": [final.get(f) for f in s["best_psnr_by_family"]],
        }
    )
    shown = families["final"] if final else families["best"]
    families["gain"] = shown - families["baseline"]
    if s.get("family_fit_psnr_by_family"):  # told the family; never one of the baselines
        families["limit"] = [s["family_fit_psnr_by_family"].get(f) for f in families["family"]]
    ranking = None
    if (root / "technique_ranking.json").exists():
        r = ctx.read_json(root / "technique_ranking.json")
        ranking = {
            "split": r["select_split"],
            "table": frame_table(
                pd.DataFrame.from_records(r["ranking"]), RANKING_COLUMNS, sort_by="gain_db"
            ),
        }
    matrix = None
    if (root / "performance_matrix.csv").exists():
        frame = ctx.read_table(root / "performance_matrix.csv")
        matrix = frame_table(
            frame, MATRIX_COLUMNS, headline="psnr", sort_by="psnr", limit=ctx.max_thumbnails,
            caption=f"top {min(len(frame), ctx.max_thumbnails)} of {len(frame)} cells by PSNR",
        )  # fmt: skip
    samples = []
    for cell in dict.fromkeys(["final", s["best_cell"], "baseline", "fixedq"]):
        folder = root / "final" if cell == "final" else root / "cells" / cell
        grids = sorted(folder.glob("seed*/samples.png"))
        if grids:
            samples.append(ctx.figure(grids[0], f"{cell}: observed / truth / prediction / error"))
    targets = [
        (name.replace("_", " "), "met" if ok else "NOT met")
        for name, ok in (s.get("targets") or {}).items()
    ]
    collapsed = s.get("fixed_query_ablation_collapsed")
    if collapsed is not None:
        targets.append(("fixed-query ablation collapses to the mean", "yes" if collapsed else "NO"))
    return ctx.render(
        "sections/sparse.html.j2",
        s=s,
        n_families=len(families),
        targets=targets,
        families=frame_table(
            families, FAMILY_COLUMNS, headline="final" if final else "best", sort_by="gain"
        ),
        ranking=ranking,
        matrix=matrix,
        heatmap=ctx.figure(root / "improvement_heatmap.png", "PSNR gain over the baseline cell"),
        curve=ctx.figure(
            root / "learning_curve.png",
            "learning curve: PSNR against training examples seen (baseline cell, final cell)",
        )
        if (root / "learning_curve.png").exists()
        else None,
        samples=samples,
    )
