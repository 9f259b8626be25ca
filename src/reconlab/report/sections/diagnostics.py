"""Report section: dense-feature diagnostics (PCA maps, smoothness, reference maps, retrieval)."""

from __future__ import annotations

from reconlab.report.context import ReportContext
from reconlab.report.tables import records_table

TITLE = "Dense-feature diagnostics"
ORDER = 60

COLUMNS = {
    "backbone": "backbone",
    "retrieval_map_mean": "mAP, mean token",
    "smoothness_mean": "neighbour smoothness",
    "retrieval_recall_at_1_cls": "R@1, CLS",
    "retrieval_recall_at_1_mean": "R@1, mean token",
    "retrieval_map_cls": "mAP, CLS",
    "retrieval_map_cls_removed": "mAP, CLS, bg removed",
    "retrieval_map_mean_removed": "mAP, mean token, bg removed",
    "grid": "patch grid",
    "weights": "weights",
}
PAIR_COLUMNS = {
    "pair": "pair",
    "backbone": "backbone",
    "smoothness": "smoothness (compared grid)",
    "native": "native grid",
    "compared": "compared grid",
    "resampled": "resampled",
    "cell_px": "px per cell",
}


def render(ctx: ReportContext) -> str | None:
    root = ctx.results / "diagnostics"
    per_backbone = sorted(root.glob("*/metrics.json")) if root.is_dir() else []
    if not per_backbone:
        return None
    metrics = [ctx.read_json(p) for p in per_backbone]
    rows = [
        {
            **m,
            "backbone": m["backbone_id"],
            "grid": f"{m['grid'][0]}x{m['grid'][1]} ({m['patch_size']} px patches)",
        }
        for m in metrics
    ]
    pairs = []
    for path in sorted(root.glob("compare/*.json")):
        c = ctx.read_json(path)
        for name, e in c["per_backbone"].items():
            pairs.append(
                {
                    "pair": path.stem,
                    "backbone": name,
                    "native": "x".join(map(str, e["grid"])),
                    "compared": "x".join(map(str, c["grid"])),
                    "resampled": e["resampled"],
                    "cell_px": "x".join(f"{v:.3g}" for v in e["cell_pixels"]),
                    "smoothness": e["smoothness_mean_equal_grid"],
                }
            )
    figures = [
        ctx.figure(p, f"side by side at an equal patch grid: {p.stem}")
        for p in sorted(root.glob("compare/*.png"))
    ]
    for path in per_backbone:
        b = path.parent.name
        figures.append(
            ctx.figure(path.parent / "maps.png", f"{b}: PCA, foreground, reference maps")
        )
        figures.append(ctx.figure(path.parent / "smoothness.png", f"{b}: neighbour smoothness"))
    return ctx.render(
        "sections/diagnostics.html.j2",
        first=metrics[0],
        weights=sorted({m["weights"] for m in metrics}),
        table=records_table(rows, COLUMNS, headline="retrieval_map_mean"),
        pairs=records_table(pairs, PAIR_COLUMNS) if pairs else None,
        figures=figures,
    )
