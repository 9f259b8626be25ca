"""Report section: the prepared data (splits, rejected files, sample crops, fields)."""

from __future__ import annotations

from reconlab.report.context import ReportContext
from reconlab.report.tables import records_table

TITLE = "Data"
ORDER = 10
COLUMNS = {"split": "split", "crops": "crops", "sources": "source photos", "fields": "fields"}


def render(ctx: ReportContext) -> str | None:
    metrics_file = ctx.metrics / "data.json"
    if not metrics_file.exists():
        return None
    m = ctx.read_json(metrics_file)
    rows = [
        {
            "split": split,
            "sources": m["images"]["sources"].get(split, 0),
            "crops": m["images"]["crops"].get(split, 0),
            "fields": m["fields"]["count"].get(split, 0),
        }
        for split in ("train", "val", "test")
    ]
    return ctx.render(
        "sections/data.html.j2",
        images=m["images"],
        table=records_table(rows, COLUMNS, headline="crops"),
        samples=ctx.figure(ctx.results / "data" / "samples.png", "sample crops per split"),
        fields=ctx.figure(
            ctx.results / "data" / "fields.png", "synthetic fields, one row per family"
        ),
    )
