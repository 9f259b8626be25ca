"""Report section: feature inversion — decoder vs baselines per backbone, with images."""

from __future__ import annotations

from reconlab.report.context import ReportContext

TITLE = "Feature inversion (tiny decoder)"
ORDER = 30

COLUMNS = [
    ("psnr", "PSNR (dB)"),
    ("ssim", "SSIM"),
    ("mae", "MAE"),
    ("baseline_bicubic_psnr", "bicubic thumbnail PSNR"),
    ("baseline_mean_psnr", "mean image PSNR"),
    ("gain_over_bicubic_db", "gain vs bicubic (dB)"),
    ("gain_over_mean_db", "gain vs mean (dB)"),
    ("lpips", "LPIPS"),
]


def _load(ctx: ReportContext) -> list[dict]:
    root = ctx.results / "decoder"
    if not root.is_dir():
        return []
    table = root / "comparison.csv"
    if table.exists():  # the backbones of the last run, in params order (no stale folders)
        import csv

        with open(table, newline="") as f:
            found = [root / row["backbone"] / "metrics.json" for row in csv.DictReader(f)]
    else:
        found = sorted(root.glob("*/metrics.json"))
    return [ctx.read_json(p) for p in found if p.exists()]


def _cell(ctx: ReportContext, value) -> str:
    if isinstance(value, str):  # e.g. "not computed: <reason>"
        return f'<td title="{ctx.esc(value)}">n/a</td>'
    if value is None:
        return "<td>n/a</td>"
    return f"<td>{ctx.esc(ctx.fmt(float(value)))}</td>"


def render(ctx: ReportContext) -> str | None:
    results = _load(ctx)
    if not results:
        return None
    head = "".join(f"<th>{ctx.esc(label)}</th>" for _, label in COLUMNS)
    rows = []
    for m in results:
        name = ctx.esc(m["backbone_id"])
        badge = ctx.untrained_badge(m.get("weights"))
        cells = "".join(_cell(ctx, m.get(key)) for key, _ in COLUMNS)
        rows.append(
            f"<tr><td style='text-align:left'>{name} {badge}</td>{cells}"
            f"<td style='text-align:left'>{ctx.esc(m['verdict'])}</td></tr>"
        )
    table = (
        f"<table><thead><tr><th>backbone</th>{head}<th>verdict</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    n_test = {m["n_test"] for m in results}
    lpips_note = next((m["lpips"] for m in results if isinstance(m.get("lpips"), str)), None)
    losers = [m["backbone_id"] for m in results if not m.get("beats_bicubic")]
    parts = [
        "<p>A tiny conv decoder is trained per backbone (L1) to map its cached patch features "
        "back to RGB; metrics are means over the held-out test images "
        f"(n = {', '.join(str(n) for n in sorted(n_test))}). Baselines: the bicubic upsampling "
        "of a thumbnail at the patch-grid resolution (what a grid-sized RGB image holds) and "
        "the mean training image. Gains are the decoder's PSNR minus the baseline's.</p>",
        table,
    ]
    if losers:
        parts.append(
            "<p><strong>Does not beat the bicubic thumbnail: "
            f"{ctx.esc(', '.join(losers))}.</strong> For these backbones the decoder recovers "
            "less than a patch-grid-sized thumbnail holds.</p>"
        )
    untrained = [m["backbone_id"] for m in results if m.get("untrained")]
    if len(untrained) == len(results):
        parts.append(
            "<p><strong>Every backbone here has random weights</strong> (e.g. an offline run): "
            "the table measures the decoder on random features, not what DINO pretraining "
            "encodes.</p>"
        )
    elif not untrained:
        parts.append(
            "<p>No random-init control in <code>features.backbones</code>: add an entry with "
            "<code>weights: random</code> and the same model to see what pretraining adds.</p>"
        )
    if lpips_note:
        parts.append(f"<p>LPIPS: {ctx.esc(lpips_note)}.</p>")
    for m in results:
        folder = ctx.results / "decoder" / m["backbone_id"]
        parts.append(
            f"<h3>{ctx.esc(m['backbone_id'])} {ctx.untrained_badge(m.get('weights'))}</h3>"
        )
        parts.append(ctx.img(folder / "comparison.png", f"{m['backbone_id']}: test images"))
        parts.append(ctx.img(folder / "loss_plot.png", f"{m['backbone_id']}: train / val loss"))
    return "\n".join(parts)
