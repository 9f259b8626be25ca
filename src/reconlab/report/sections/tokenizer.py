"""Report section: the VQ tokenizer study (PSNR vs bpp against JPEG, resolution scaling)."""

from __future__ import annotations

import csv

from reconlab.report.context import ReportContext

TITLE = "Tokenizer"
ORDER = 40


def render(ctx: ReportContext) -> str | None:
    metrics_file = ctx.metrics / "tokenizer.json"
    root = ctx.results / "tokenizer"
    if not metrics_file.exists() or not (root / "summary.csv").exists():
        return None
    m = ctx.read_json(metrics_file)
    with open(root / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    ref = m["reference_resolution"]
    rows = [{"variant": v, **vals} for v, vals in m["variants"].items()]
    jpeg_rows = [
        {
            "variant": r["variant"],
            "resolution": r["resolution"],
            "bpp": float(r["bpp"]),
            "PSNR": float(r["psnr"]),
            "JPEG PSNR at equal bpp": float(r["jpeg_psnr_at_bpp"])
            if r["jpeg_psnr_at_bpp"]
            else "n/a",
            "delta dB": float(r["delta_db"]),
            "beats JPEG": r["beats_jpeg"],
            "note": r["note"],
        }
        for r in summary
    ]
    wins = [f"{r['variant']} @ {r['resolution']} px" for r in summary if r["beats_jpeg"] == "True"]
    logs = []
    for v in m["variants"]:
        log_file = root / v / "train_log.json"
        if log_file.exists():
            meta = ctx.read_json(log_file)["metadata"]
            logs.append(
                {
                    "variant": v,
                    "perceptual loss": meta["perceptual"],
                    "codebook": meta["codebook_loss"],
                    "trained": meta["weights"],
                }
            )
    parts = [
        "<p>Conv encoder &rarr; vector quantizer (vector-quantize-pytorch: EMA, k-means init, "
        "dead-code restart, low-dimensional l2-normalised codes; or FSQ) &rarr; learned conv decoder. "
        "bpp = tokens &times; log2(K) / pixels (no entropy coding). Evaluated on the test split's "
        "source photos, centre square crops resized to each resolution (upsampled beyond their "
        "native size); JPEG (Pillow, whole-file bytes) on the same images. FID/FDD: not computed "
        "(no pretrained weights offline, and too few test images).</p>",
        f"<p>Where a variant beats JPEG: {ctx.esc(', '.join(wins)) if wins else 'nowhere in this run'}.</p>",
        f"<h3>Per variant at {ref} px</h3>",
        "<p>Codebook usage: <code>codebook_usage_test</code> counts codes used over every crop of "
        "the test split, <code>codebook_usage_train</code> over every crop of the train split "
        "(target: 95% for the default variant). A test split of one or two photos holds few "
        "tokens and one kind of content, so it uses fewer codes than the train split.</p>",
        ctx.table(rows),
        ctx.img(root / "psnr_vs_bpp.png", "PSNR vs bits per pixel, with the JPEG curve"),
        ctx.img(root / "resolution_scaling.png", "PSNR, throughput and peak memory vs resolution"),
        "<h3>Against JPEG at equal bits per pixel</h3>",
        ctx.table(jpeg_rows),
        "<h3>Training</h3>",
        ctx.table(logs),
    ]
    return "\n".join(parts)
