"""Report section: the prepared data (splits, rejected files, sample crops, fields)."""

from __future__ import annotations

from reconlab.report.context import ReportContext

TITLE = "Data"
ORDER = 10


def render(ctx: ReportContext) -> str | None:
    metrics_file = ctx.metrics / "data.json"
    if not metrics_file.exists():
        return None
    m = ctx.read_json(metrics_file)
    rows = [
        {
            "split": split,
            "source photos": m["images"]["sources"].get(split, 0),
            "crops": m["images"]["crops"].get(split, 0),
            "fields": m["fields"]["count"].get(split, 0),
        }
        for split in ("train", "val", "test")
    ]
    parts = [
        f"<p>Image source: <code>{ctx.esc(m['images']['source'])}</code>; "
        f"crop {m['images']['crop_size']} px; rejected files: {m['images']['rejected']}.</p>",
        ctx.table(rows),
        ctx.img(ctx.results / "data" / "samples.png", "sample crops per split"),
        ctx.img(ctx.results / "data" / "fields.png", "synthetic fields, one row per family"),
    ]
    return "\n".join(parts)
