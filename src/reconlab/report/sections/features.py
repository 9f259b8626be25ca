"""Report section: the feature caches (backbone, weights identity, geometry, image counts)."""

from __future__ import annotations

from reconlab.report.context import ReportContext

TITLE = "Feature caches"
ORDER = 20


def render(ctx: ReportContext) -> str | None:
    summary = ctx.results / "features" / "summary.json"
    if not summary.exists():
        return None
    rows, badges = [], []
    for b in ctx.read_json(summary)["backbones"]:
        h, w = b["image_size"]
        gh, gw = b["grid"]
        rows.append(
            {
                "backbone": b["backbone_id"],
                "model": b["model"],
                "weights": _short(b["weights_id"]),
                "untrained": "yes" if b["untrained"] else "no",
                "input": f"{h}x{w}",
                "grid": f"{gh}x{gw}",
                "dim": b["embed_dim"],
                "prefix tokens": b["num_prefix_tokens"],
                "layers": ", ".join(str(k) for k in b["layers"]) or "final",
                "dtype": b["dtype"],
                **{split: b["count"].get(split, 0) for split in ("train", "val", "test")},
            }
        )
        if b["untrained"]:
            badges.append(
                f"<p>{ctx.esc(b['backbone_id'])}: {ctx.untrained_badge(b['weights_id'])}</p>"
            )
    intro = (
        "<p>CLS and final-layer patch tokens of every prepared image, one verified cache per "
        "backbone (<code>data/features/&lt;backbone&gt;</code>; every shard's sha256 checked "
        "when this summary was written). Prefix tokens (CLS, registers) are removed using the "
        "model's own count.</p>"
    )
    return intro + "".join(badges) + ctx.table(rows)


def _short(weights_id: str) -> str:
    """``sha256:<64 hex>`` shortened to 12 hex digits for the table."""
    return weights_id[:19] + "…" if weights_id.startswith("sha256:") else weights_id
