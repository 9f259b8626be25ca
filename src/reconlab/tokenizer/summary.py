"""Tokenizer summary (the ``summarize_tokenizer`` rule): the JPEG comparison table, the native
tables, the DVC metrics, and the figures of :mod:`reconlab.tokenizer.plots`.

Outputs: ``psnr_vs_bpp.png`` (one panel per resolution: JPEG curve + each variant),
``resolution_scaling.png`` (PSNR, encode/decode img/s, peak memory vs resolution),
``rd_curve.png`` (PSNR and SSIM vs bpp per quantizer family against JPEG: ``rd.py``),
``summary.csv`` (every variant x resolution with its place on the JPEG curve),
``native.csv`` / ``native_buckets.csv`` (every image at its own size, and means per resolution
bucket) and ``metrics/tokenizer.json`` (small scalars per variant at the reference resolution).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from reconlab.config import TokenizerConfig
from reconlab.io import read_csv, read_json, write_csv, write_json
from reconlab.provenance import summarize_compute
from reconlab.tokenizer.jpeg import compare_to_jpeg
from reconlab.tokenizer.plots import plot_psnr_vs_bpp, plot_resolution_scaling
from reconlab.tokenizer.rd import plot_rd, rd_summary

SUMMARY_COLUMNS = (
    "variant", "resolution", "bpp", "psnr", "ssim", "codebook_usage", "perplexity",
    "encode_img_s", "decode_img_s", "peak_mem_mb", "tiled", "jpeg_psnr_at_bpp", "delta_db",
    "beats_jpeg", "note",
)  # fmt: skip


def load_jpeg(path: str | Path) -> dict[int, list[dict]]:
    """JPEG rows grouped by resolution, numbers parsed."""
    by_res: dict[int, list[dict]] = defaultdict(list)
    for r in read_csv(path):
        by_res[int(r["resolution"])].append(
            {
                "quality": int(r["quality"]),
                "bpp": float(r["bpp"]),
                "psnr": float(r["psnr"]),
                "ssim": float(r["ssim"]),
            }
        )
    return dict(by_res)


def summarize_tokenizer(
    cfg: TokenizerConfig, results: str | Path, jpeg_csv: str | Path, metrics: str | Path,
    figures: str | Path,
) -> dict:  # fmt: skip
    """Read every ``{variant}/eval_{res}.json`` and the JPEG CSV; write figures, CSV and metrics."""
    results, figures = Path(results), Path(figures)
    jpeg = load_jpeg(jpeg_csv)
    rows = []
    for variant in cfg.variants:
        for res in sorted(cfg.eval["resolutions"]):
            r = read_json(results / variant / f"eval_{res}.json")
            if res not in jpeg:
                raise ValueError(
                    f"tokenizer: {jpeg_csv} has no JPEG rows at {res} px; rerun jpeg_baseline"
                )
            rows.append(
                {
                    **{k: r[k] for k in SUMMARY_COLUMNS[:11]},
                    **compare_to_jpeg(jpeg[res], r["bpp"], r["psnr"]),
                }
            )
    write_csv(figures / "summary.csv", rows, SUMMARY_COLUMNS)
    plot_psnr_vs_bpp(rows, jpeg, figures / "psnr_vs_bpp.png")
    plot_resolution_scaling(rows, figures / "resolution_scaling.png")

    ref = cfg.eval["reference_resolution"]
    if ref not in cfg.eval["resolutions"]:
        ref = sorted(cfg.eval["resolutions"])[0]
    out: dict = {"reference_resolution": ref, "variants": {}}
    at_ref = [r for r in rows if r["resolution"] == ref]
    out["rd"] = rd_summary(at_ref, jpeg[ref])
    plot_rd(at_ref, jpeg[ref], out["rd"], ref, figures / "rd_curve.png")
    for variant in cfg.variants:
        key = variant.replace(".", "_")
        at = next(r for r in rows if r["variant"] == variant and r["resolution"] == ref)
        split = read_json(results / variant / "test_split.json")
        # Keys are dot-free for `dvc metrics diff` (f4-FSQ3.3.3 -> f4-FSQ3_3_3; the name is kept
        # inside); throughput (img/s) churns with machine load, so it stays in summary.csv.
        out["variants"][key] = {
            "variant": variant,
            "bpp": round(at["bpp"], 5),
            "psnr": round(at["psnr"], 3),
            "ssim": round(at["ssim"], 4),
            "jpeg_delta_db": round(at["delta_db"], 3),
            "beats_jpeg": at["beats_jpeg"],
            "peak_mem_mb": round(max(r["peak_mem_mb"] for r in rows if r["variant"] == variant), 1),
            "codebook_usage_test": round(split["codebook_usage"], 2),
            "perplexity_test": round(split["perplexity"], 2),
            "dead_codes_test": split["dead_codes"],
            "psnr_test_crops": round(split["psnr"], 3),
        }
        train_log = results / variant / "train_log.json"
        if train_log.exists():  # usage over the whole train split, at the end of training
            final = read_json(train_log)["final"]["train"]
            out["variants"][key]["codebook_usage_train"] = round(final["codebook_usage"], 2)
        out["variants"][key].update(
            frechet_metrics(read_json(results / variant / f"eval_{ref}.json"))
        )
    out["compute"] = summarize_compute(
        read_json(results / v / f"eval_{res}.json")
        for v in cfg.variants
        for res in cfg.eval["resolutions"]
    )
    native = write_native_tables(results, cfg.variants, figures)
    for variant, r in native.items():
        out["variants"][variant.replace(".", "_")].update({
            "psnr_native": round(r["psnr"], 3), "ssim_native": round(r["ssim"], 4),
            "bpp_native": round(r["bpp"], 5), "native_images": r["n_images"],
        })  # fmt: skip
    write_json(metrics, out)
    return out


def frechet_metrics(r: dict) -> dict:
    """FID/FDD of one ``eval_*.json`` for the metrics: value (or its "not computed" reason),
    sample count, whether the network was untrained, and FID's Inception feature width."""
    out = {}
    for name in ("fid", "fdd"):
        value = r.get(name, "not computed: not in this result")
        out[name] = float(f"{value:.6g}") if isinstance(value, float) else value  # 6 digits
        if isinstance(value, float):
            out[f"{name}_samples"] = r[f"{name}_samples"]
            out[f"{name}_untrained"] = r[f"{name}_untrained"]
    if isinstance(out["fid"], float):  # FID-2048 unless tokenizer.eval.frechet says otherwise
        out["fid_features"] = r.get("fid_features", 2048)
    return out


NATIVE_COLUMNS = (
    "variant", "image", "height", "width", "megapixels", "bucket", "tiled", "bpp", "psnr", "ssim",
)  # fmt: skip
BUCKET_COLUMNS = ("variant", "bucket", "n_images", "megapixels", "bpp", "psnr", "ssim")


def write_native_tables(results: Path, variants: list[str], figures: Path) -> dict[str, dict]:
    """``native.csv`` (one row per variant x image) and ``native_buckets.csv`` from every
    ``{variant}/eval_native.json``; returns those results by variant."""
    native = {v: read_json(results / v / "eval_native.json") for v in variants}
    rows = [row for r in native.values() for row in r["images"]]
    buckets = [{"variant": v, **b} for v, r in native.items() for b in r["buckets"]]
    write_csv(figures / "native.csv", rows, NATIVE_COLUMNS)
    write_csv(figures / "native_buckets.csv", buckets, BUCKET_COLUMNS)
    return native
