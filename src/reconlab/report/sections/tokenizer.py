"""Report section: the VQ tokenizer study (PSNR vs bpp against JPEG, resolution scaling)."""

from __future__ import annotations

import pandas as pd

from reconlab.report.context import ReportContext
from reconlab.report.tables import frame_table

TITLE = "Tokenizer"
ORDER = 40

VARIANT_COLUMNS = {
    "variant": "variant",
    "psnr": "PSNR (dB)",
    "jpeg_delta_db": "vs JPEG at equal bpp (dB)",
    "bpp": "bits per pixel",
    "ssim": "SSIM",
    "beats_jpeg": "beats JPEG",
    "codebook_usage_test": "codebook usage, test (%)",
    "codebook_usage_train": "codebook usage, train (%)",
    "perplexity_test": "perplexity (test)",
    "dead_codes_test": "dead codes (test)",
    "psnr_test_crops": "PSNR on test crops (dB)",
    "fid": "FID (patches)",
    "fid_samples": "FID samples",
    "fid_features": "FID feature width",
    "fdd": "FDD (patches)",
    "fdd_samples": "FDD samples",
    "encode_img_s": "encode (img/s)",
    "decode_img_s": "decode (img/s)",
    "peak_mem_mb": "peak memory (MiB)",
}
JPEG_COLUMNS = {
    "variant": "variant",
    "psnr": "PSNR (dB)",
    "delta_db": "vs JPEG (dB)",
    "resolution": "resolution (px)",
    "bpp": "bits per pixel",
    "jpeg_psnr_at_bpp": "JPEG PSNR at equal bpp (dB)",
    "beats_jpeg": "beats JPEG",
    "note": "note",
}
NATIVE_BUCKET_COLUMNS = {
    "variant": "variant",
    "bucket": "longer side (px)",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "bpp": "bits per pixel",
    "n_images": "images",
    "megapixels": "mean megapixels",
}
NATIVE_IMAGE_COLUMNS = {
    "variant": "variant",
    "image": "image",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "bpp": "bits per pixel",
    "width": "width (px)",
    "height": "height (px)",
    "bucket": "bucket",
    "tiled": "tiled",
}
TRAIN_COLUMNS = {
    "variant": "variant",
    "perceptual": "perceptual loss",
    "codebook_loss": "codebook loss",
    "weights": "trained",
}


def render(ctx: ReportContext) -> str | None:
    metrics_file = ctx.metrics / "tokenizer.json"
    root = ctx.results / "tokenizer"
    if not metrics_file.exists() or not (root / "summary.csv").exists():
        return None
    m = ctx.read_json(metrics_file)
    summary = ctx.read_table(root / "summary.csv")
    variants = pd.DataFrame.from_records(
        [{"variant": v, **vals} for v, vals in m["variants"].items()]
    )
    wins = summary[summary["beats_jpeg"].astype(bool)]
    logs = [
        {"variant": v, **ctx.read_json(root / v / "train_log.json")["metadata"]}
        for v in (vals.get("variant", k) for k, vals in m["variants"].items())
        if (root / v / "train_log.json").exists()
    ]
    native = native_tables(ctx, root)
    return ctx.render(
        "sections/tokenizer.html.j2",
        **native,
        reference=m["reference_resolution"],
        wins=[f"{r.variant} @ {r.resolution} px" for r in wins.itertuples()],
        variants=frame_table(variants, VARIANT_COLUMNS, headline="psnr", sort_by="psnr"),
        jpeg=frame_table(summary, JPEG_COLUMNS, headline="psnr", sort_by="delta_db"),
        training=frame_table(pd.DataFrame.from_records(logs), TRAIN_COLUMNS),
        rd=ctx.figure(root / "psnr_vs_bpp.png", "PSNR vs bits per pixel, with the JPEG curve"),
        rd_curve=ctx.figure(
            root / "rd_curve.png", "Rate–distortion per quantizer family against JPEG"
        ),
        rd_statements=[
            fam[metric]["statement"]
            for fam in m.get("rd", {}).values()
            for metric in ("psnr", "ssim")
        ],
        scaling=ctx.figure(
            root / "resolution_scaling.png", "PSNR, throughput and peak memory vs resolution"
        ),
    )


def native_tables(ctx: ReportContext, root) -> dict:
    """The native-resolution bucket and per-image tables (empty when not evaluated)."""
    if not (root / "native.csv").exists() or not (root / "native_buckets.csv").exists():
        return {"native_buckets": None, "native_images": None}
    buckets = ctx.read_table(root / "native_buckets.csv")
    images = ctx.read_table(root / "native.csv")
    return {
        "native_buckets": frame_table(buckets, NATIVE_BUCKET_COLUMNS, headline="psnr"),
        "native_images": frame_table(images, NATIVE_IMAGE_COLUMNS, headline="psnr"),
    }
