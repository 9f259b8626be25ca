"""Report section: dense-feature diagnostics (PCA maps, smoothness, reference maps, retrieval)."""

from __future__ import annotations

from reconlab.report.context import ReportContext

TITLE = "Dense-feature diagnostics"
ORDER = 60

_COLUMNS = {
    "smoothness_mean": "smoothness",
    "retrieval_recall_at_1_cls": "R@1 CLS",
    "retrieval_recall_at_1_mean": "R@1 mean",
    "retrieval_map_cls": "mAP CLS",
    "retrieval_map_mean": "mAP mean",
    "retrieval_map_cls_removed": "mAP CLS, bg removed",
    "retrieval_map_mean_removed": "mAP mean, bg removed",
}


def render(ctx: ReportContext) -> str | None:
    root = ctx.results / "diagnostics"
    if not root.is_dir():
        return None
    per_backbone = sorted(p for p in root.glob("*/metrics.json"))
    if not per_backbone:
        return None
    rows, parts = [], []
    for path in per_backbone:
        m = ctx.read_json(path)
        row = {"backbone": m["backbone_id"], "weights": m["weights"]}
        row["grid"] = f"{m['grid'][0]}x{m['grid'][1]} ({m['patch_size']} px patches)"
        row.update({label: m.get(key, "") for key, label in _COLUMNS.items()})
        rows.append(row)
    first = ctx.read_json(per_backbone[0])
    parts.append(
        "<p>Smoothness: mean cosine similarity of each patch with its 4 neighbours "
        f"(split <code>{ctx.esc(first['split'])}</code>). Retrieval: leave-one-out cosine ranking "
        f"of {first['retrieval_items']} crops of {first['retrieval_sources']} source photos "
        "(label = source photo); 'bg removed': the top "
        f"{first['remove_directions']} principal direction(s) of the patch tokens projected out.</p>"
    )
    badges = {ctx.untrained_badge(r["weights"]) for r in rows} - {""}
    parts.extend(sorted(badges))
    parts.append(ctx.table(rows))
    pairs = []
    for path in sorted(root.glob("compare/*.json")):
        c = ctx.read_json(path)
        for name, e in c["per_backbone"].items():
            pairs.append(
                {
                    "pair": path.stem,
                    "backbone": name,
                    "native grid": "x".join(map(str, e["grid"])),
                    "compared grid": "x".join(map(str, c["grid"])),
                    "resampled": e["resampled"],
                    "px per cell": "x".join(f"{v:.3g}" for v in e["cell_pixels"]),
                    "smoothness (compared grid)": e["smoothness_mean_equal_grid"],
                }
            )
    if pairs:
        parts.append(
            "<p>Side by side at an equal patch grid. A resampled grid averages neighbouring "
            "patches, which raises its smoothness: for a fair smoothness comparison give the "
            "backbones image sizes with equal grids (DINOv2 224 px and DINOv3 256 px: 16x16).</p>"
        )
        parts.append(ctx.table(pairs))
    for path in sorted(root.glob("compare/*.png")):
        parts.append(ctx.img(path, f"side by side at an equal patch grid: {path.stem}"))
    for path in per_backbone:
        b = path.parent.name
        parts.append(ctx.img(path.parent / "maps.png", f"{b}: PCA, foreground, reference maps"))
        parts.append(ctx.img(path.parent / "smoothness.png", f"{b}: neighbour smoothness"))
    return "\n".join(parts)
