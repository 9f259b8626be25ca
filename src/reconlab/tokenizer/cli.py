"""`reconlab tokenizer-train`, `tokenizer-evaluate`, `tokenizer-jpeg`, `tokenizer-summarize`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reconlab.cli import add_params_args, load_section


def _config(args: argparse.Namespace):
    from reconlab.config import TokenizerConfig, from_section

    return from_section(TokenizerConfig, load_section(args))


def _train(args: argparse.Namespace) -> int:
    from reconlab.checkpoint import checkpoint_path
    from reconlab.tokenizer.model import parse_variant
    from reconlab.tokenizer.train import train_tokenizer

    cfg = _config(args)
    parse_variant(args.variant)
    checkpoint = args.checkpoint or checkpoint_path(args.out)
    log = train_tokenizer(
        args.variant, cfg, args.images, args.out, checkpoint, args.stop_after, args.data_source
    )
    if log is None:
        print(
            f"tokenizer-train {args.variant}: stopped with a checkpoint at {checkpoint}; rerun to resume"
        )
        return 0
    v = log["final"]["val"]
    print(
        f"tokenizer-train {args.variant}: {cfg.train['steps']} steps in {log['seconds']:.0f} s; "
        f"val PSNR {v['psnr']:.2f} dB, val usage {v['codebook_usage']:.1f}% -> {args.out}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from reconlab.tokenizer.evaluate import evaluate_tokenizer

    cfg = _config(args)
    results = evaluate_tokenizer(
        args.model, cfg, args.manifest, args.data_source, args.out, _fdd_backbone(args, cfg)
    )
    for r in results:
        print(
            f"tokenizer-evaluate {r['variant']} @{r['resolution']}: PSNR {r['psnr']:.2f} dB, "
            f"bpp {r['bpp']:.4f}, usage {r['codebook_usage']:.1f}%, "
            f"enc {r['encode_img_s']:.3g} img/s, dec {r['decode_img_s']:.3g} img/s, "
            f"peak {r['peak_mem_mb']:.0f} MiB"
        )
    return 0


def _fdd_backbone(args: argparse.Namespace, cfg) -> dict | None:
    """FDD's backbone entry: --fdd-backbone, else the features section of the params files."""
    from reconlab.tokenizer.params import frechet_backbone

    if args.fdd_backbone is not None:
        return json.loads(args.fdd_backbone)
    wanted = cfg.eval["frechet"]["backbone"]
    if wanted is None:
        return None
    if args.params is not None:
        raise SystemExit(
            "error: tokenizer-evaluate: --params needs --fdd-backbone JSON (the features.backbones "
            f"entry {wanted!r}), or set tokenizer.eval.frechet.backbone to null"
        )
    return frechet_backbone(load_section(args, "features"), wanted)


def _jpeg(args: argparse.Namespace) -> int:
    from reconlab.tokenizer.evaluate import jpeg_baseline

    cfg = _config(args)
    rows = jpeg_baseline(cfg, args.manifest, args.data_source, args.out)
    print(f"tokenizer-jpeg: {len(rows)} (resolution, quality) points -> {args.out}")
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from reconlab.tokenizer.summary import summarize_tokenizer

    cfg = _config(args)
    metrics = summarize_tokenizer(cfg, args.results, args.jpeg, args.metrics, args.figures)
    for variant, m in metrics["variants"].items():
        print(f"tokenizer-summarize {variant}: {m}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tokenizer-train", help="train one VQ tokenizer variant on the training photos"
    )
    add_params_args(p, "tokenizer")
    p.add_argument("--variant", required=True, help="e.g. f8x16-K1024 or f8-FSQ8.5.5.5")
    p.add_argument(
        "--images",
        type=Path,
        default=Path("data/prepared/images"),
        help="the prepared images folder (train/, val/, test/); its manifest.csv names the photos",
    )
    p.add_argument(
        "--data-source",
        default="skimage",
        help="data.source: where the training split's photos live ('skimage' or a folder)",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="folder for model.safetensors, train_log.*"
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="resumable checkpoint (default OUT/.ckpt/last.pt; deleted once OUT is written)",
    )
    p.add_argument(
        "--stop-after", type=int, help="leave after N steps with a checkpoint (time-limited jobs)"
    )
    p.set_defaults(func=_train)

    p = sub.add_parser("tokenizer-evaluate", help="PSNR/SSIM/bpp/speed/memory per resolution")
    add_params_args(p, "tokenizer")
    p.add_argument("--model", type=Path, required=True, help="model.safetensors of a variant")
    p.add_argument(
        "--manifest",
        type=Path,
        default=Path("data/prepared/manifest.csv"),
        help="the prepared images' manifest.csv (test photos)",
    )
    p.add_argument("--data-source", default="skimage", help="data.source (where test photos live)")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for eval_{res}.json, eval_native.json, test_split.json",
    )
    p.add_argument(
        "--fdd-backbone",
        metavar="JSON",
        help="FDD's DINOv2: the features.backbones entry (with seed) as JSON, or null; "
        "default: read from the params files",
    )
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("tokenizer-jpeg", help="Pillow JPEG baseline on the same test photos")
    add_params_args(p, "tokenizer")
    p.add_argument(
        "--manifest",
        type=Path,
        default=Path("data/prepared/manifest.csv"),
        help="the prepared images' manifest.csv (test photos)",
    )
    p.add_argument(
        "--data-source",
        default="skimage",
        help="data.source: 'skimage' or a folder of photos",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="CSV of resolution, quality, bpp, psnr, ssim"
    )
    p.set_defaults(func=_jpeg)

    p = sub.add_parser(
        "tokenizer-summarize", help="figures, JPEG comparison, metrics/tokenizer.json"
    )
    add_params_args(p, "tokenizer")
    p.add_argument(
        "--results",
        type=Path,
        default=Path("results/tokenizer"),
        help="folder with <variant>/eval_<res>.json",
    )
    p.add_argument(
        "--jpeg",
        type=Path,
        default=Path("results/tokenizer/jpeg/jpeg.csv"),
        help="the JPEG baseline CSV",
    )
    p.add_argument(
        "--metrics",
        type=Path,
        default=Path("metrics/tokenizer.json"),
        help="metrics JSON to write",
    )
    p.add_argument(
        "--figures",
        type=Path,
        default=Path("results/tokenizer"),
        help="folder for the figures and summary.csv",
    )
    p.set_defaults(func=_summarize)
