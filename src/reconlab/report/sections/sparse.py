"""Report section: sparse-query flow matching — best cell vs baselines, ranking, ablation, figures."""

from __future__ import annotations

import csv

from reconlab.report.context import ReportContext

TITLE = "Sparse-query reconstruction (5% of pixels, flow matching)"
ORDER = 50


def render(ctx: ReportContext) -> str | None:
    root = ctx.results / "sparse"
    if not (root / "summary.json").exists():
        return None
    s = ctx.read_json(root / "summary.json")
    families = list(s["best_psnr_by_family"])
    rows = [
        {
            "family": f,
            f"best cell ({s['best_cell']})": s["best_psnr_by_family"][f],
            "best baseline": s["best_baseline_psnr_by_family"][f],
            "baseline method": s["best_baseline_method_by_family"][f],
            "fixed-query ablation": (s.get("fixed_query_ablation_psnr_by_family") or {}).get(f, ""),
        }
        for f in families
    ]
    parts = [
        f"<p>PSNR (dB, clamped to [0, 1], all 1024 pixels, {ctx.esc(s['split'])} split, mean over "
        f"seeds {ctx.esc(s['seeds'])}). Best cell <code>{ctx.esc(s['best_cell'])}</code>: "
        f"{ctx.fmt(s['best_psnr'])} ± {ctx.fmt(s['best_psnr_std'])} dB (unclamped "
        f"{ctx.fmt(s['best_psnr_unclamped'])}); baseline cell {ctx.fmt(s['baseline_cell_psnr'])}; "
        f"fixed-query ablation {ctx.fmt(s['fixed_query_ablation_psnr'])}; predicting the observed "
        f"mean {ctx.fmt(s['mean_predictor_psnr'])}; one-field overfit {ctx.fmt(s['overfit_psnr'])}. "
        f"Above the best interpolation baseline on {s['families_above_best_baseline']} of "
        f"{len(families)} families. {s['cells']} cells, {s['rounds']} greedy rounds, grid wall "
        f"time {ctx.fmt(s['grid_wall_s'])} s.</p>",
        _verdicts(ctx, s),
        ctx.table(rows),
    ]
    ranking = root / "technique_ranking.json"
    if ranking.exists():
        r = ctx.read_json(ranking)
        parts.append(
            f"<p>Single techniques vs the baseline cell (selected on {ctx.esc(r['select_split'])}; "
            "beneficial = gain above twice the baseline's seed std; beneficial_pooled = above twice "
            "the seed std pooled over all cells, which a lucky near-zero baseline std cannot pass).</p>"
        )
        parts.append(ctx.table(r["ranking"]))
    matrix = root / "performance_matrix.csv"
    if matrix.exists():
        with open(matrix, newline="") as f:
            top = list(csv.DictReader(f))[: ctx.max_thumbnails]
        cols = ["cell", "round", "psnr", "psnr_std", "psnr_unclamped", "corr", "train_seconds"]
        parts.append(ctx.table(top, cols))
    parts.append(ctx.img(root / "improvement_heatmap.png", "PSNR gain over the baseline cell"))
    for cell in dict.fromkeys([s["best_cell"], "baseline", "fixedq"]):
        grids = sorted((root / "cells" / cell).glob("seed*/samples.png"))
        if grids:
            parts.append(ctx.img(grids[0], f"{cell}: observed / truth / prediction / error"))
    return "\n".join(parts)


def _verdicts(ctx: ReportContext, s: dict) -> str:
    """The study's targets and the ablation's collapse, each stated as met or not."""
    targets = s.get("targets") or {}
    collapsed = s.get("fixed_query_ablation_collapsed")
    items = [
        f"{ctx.esc(name.replace('_', ' '))}: {'met' if ok else 'NOT met'}"
        for name, ok in targets.items()
    ]
    if collapsed is not None:
        items.append(
            "fixed-query ablation collapses to the mean: " + ("yes" if collapsed else "NO")
        )
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>" if items else ""
