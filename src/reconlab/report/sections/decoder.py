"""Report section: feature inversion — decoder vs baselines per backbone, with images."""

from __future__ import annotations

import pandas as pd

from reconlab.report.context import ReportContext
from reconlab.report.tables import frame_table

TITLE = "Feature inversion (tiny decoder)"
ORDER = 30

COLUMNS = {
    "backbone_id": "backbone",
    "psnr": "PSNR (dB)",
    "gain_over_bicubic_db": "gain vs bicubic (dB)",
    "gain_over_mean_db": "gain vs mean image (dB)",
    "ssim": "SSIM",
    "mae": "MAE",
    "baseline_bicubic_psnr": "bicubic thumbnail PSNR (dB)",
    "baseline_mean_psnr": "mean image PSNR (dB)",
    "lpips": "LPIPS",
    "verdict": "verdict",
}


def load(ctx: ReportContext) -> list[dict]:
    """Per-backbone ``metrics.json`` of the last run, in params order (no stale folders)."""
    root = ctx.results / "decoder"
    if not root.is_dir():
        return []
    table = root / "comparison.csv"
    if table.exists():
        found = [root / b / "metrics.json" for b in ctx.read_table(table)["backbone"]]
    else:
        found = sorted(root.glob("*/metrics.json"))
    return [ctx.read_json(p) for p in found if p.exists()]


def render(ctx: ReportContext) -> str | None:
    results = load(ctx)
    if not results:
        return None
    frame = pd.DataFrame.from_records(results)
    table = frame_table(frame, COLUMNS, headline="psnr")
    lpips_note = next((m["lpips"] for m in results if isinstance(m.get("lpips"), str)), None)
    untrained = [m["backbone_id"] for m in results if m.get("untrained")]
    backbones = [
        {
            "id": m["backbone_id"],
            "weights": m.get("weights"),
            "comparison": ctx.figure(
                ctx.results / "decoder" / m["backbone_id"] / "comparison.png",
                f"{m['backbone_id']}: test images (target, decoder, bicubic thumbnail, mean)",
            ),
            "loss": ctx.figure(
                ctx.results / "decoder" / m["backbone_id"] / "loss_plot.png",
                f"{m['backbone_id']}: train / val loss per epoch",
            ),
        }
        for m in results
    ]
    return ctx.render(
        "sections/decoder.html.j2",
        table=table,
        n_test=sorted({m["n_test"] for m in results}),
        losers=[m["backbone_id"] for m in results if not m.get("beats_bicubic")],
        all_untrained=len(untrained) == len(results),
        none_untrained=not untrained,
        lpips_note=lpips_note,
        backbones=backbones,
    )
