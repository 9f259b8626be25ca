"""Report section: the feature caches (backbone, weights identity, geometry, image counts)."""

from __future__ import annotations

from reconlab.report.context import ReportContext
from reconlab.report.tables import records_table

TITLE = "Feature caches"
ORDER = 20
COLUMNS = {
    "backbone": "backbone", "model": "timm model", "weights": "weights", "untrained": "untrained",
    "input": "input (px)", "grid": "patch grid", "dim": "dim", "prefix": "prefix tokens",
    "layers": "layers", "dtype": "dtype", "train": "train", "val": "val", "test": "test",
}  # fmt: skip


def render(ctx: ReportContext) -> str | None:
    summary = ctx.results / "features" / "summary.json"
    if not summary.exists():
        return None
    backbones = ctx.read_json(summary)["backbones"]
    rows = [
        {
            "backbone": b["backbone_id"],
            "model": b["model"],
            "weights": short_weights(b["weights_id"]),
            "untrained": bool(b["untrained"]),
            "input": "x".join(map(str, b["image_size"])),
            "grid": "x".join(map(str, b["grid"])),
            "dim": b["embed_dim"],
            "prefix": b["num_prefix_tokens"],
            "layers": ", ".join(str(k) for k in b["layers"]) or "final",
            "dtype": b["dtype"],
            **{split: b["count"].get(split, 0) for split in ("train", "val", "test")},
        }
        for b in backbones
    ]
    return ctx.render(
        "sections/features.html.j2", backbones=backbones, table=records_table(rows, COLUMNS)
    )


def short_weights(weights_id: str) -> str:
    """``sha256:<64 hex>`` shortened to 12 hex digits for the table."""
    return weights_id[:19] + "…" if weights_id.startswith("sha256:") else weights_id
