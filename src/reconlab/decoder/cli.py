"""`reconlab train-decoder | evaluate-decoder | summarize-decoder`: the feature-inversion study."""

from __future__ import annotations

import argparse
from pathlib import Path

from reconlab.cli import add_params_args, load_section


def _config(args: argparse.Namespace):
    from reconlab.config import DecoderConfig, from_section

    return from_section(DecoderConfig, load_section(args))


def _prepared(manifest: Path) -> Path:
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no prepared-images manifest (run prepare-images)")
    return manifest.parent  # image paths in the cache are relative to the manifest's folder


def _train(args: argparse.Namespace) -> int:
    from reconlab.checkpoint import checkpoint_path
    from reconlab.decoder.study import run_training
    from reconlab.runtime import set_threads

    set_threads(args.threads)
    cfg = _config(args)
    checkpoint = args.checkpoint or checkpoint_path(args.out)
    info = run_training(cfg, args.features, _prepared(args.manifest), args.out, checkpoint,
                        progress=not args.no_progress)  # fmt: skip
    resumed = f", resumed at step {info['resumed_from_step']}" if info["resumed_from_step"] else ""
    if info["resumed_from_step"] == info["steps"]:
        resumed = ", all of them already in the checkpoint"
    speed = info["train_samples_per_s"]
    speed = f", {speed:.1f} samples/s" if speed == speed else ""  # NaN when no step was run
    print(
        f"train-decoder: {info['backbone_id']}: {info['steps']} steps on {info['n_train']} images"
        f"{resumed}{speed} on {info['device']} -> {args.out}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from reconlab.decoder.study import run_evaluation
    from reconlab.runtime import set_threads

    set_threads(args.threads)
    m = run_evaluation(_config(args), args.features, _prepared(args.manifest), args.model, args.out)
    tag = " [UNTRAINED backbone]" if m["untrained"] else ""
    print(
        f"evaluate-decoder: {m['backbone_id']}{tag}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}"
        f" on {m['n_test']} test images; bicubic thumbnail {m['baseline_bicubic_psnr']:.2f} dB,"
        f" mean image {m['baseline_mean_psnr']:.2f} dB: {m['verdict']}"
    )
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from reconlab.decoder.summary import summarize_study

    rows = summarize_study(args.metrics_files, args.metrics, args.table)
    for r in rows:
        print(
            f"summarize-decoder: {r['backbone']}: {r['psnr']:.2f} dB "
            f"({r['gain_over_bicubic_db']:+.2f} dB vs bicubic thumbnail)"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-decoder", help="train a tiny decoder from cached features to RGB")
    add_params_args(p, "decoder")
    p.add_argument("--features", type=Path, required=True, help="data/features/{backbone}")
    p.add_argument(
        "--manifest",
        type=Path,
        default=Path("data/prepared/manifest.csv"),
        help="the prepared images' manifest.csv",
    )
    p.add_argument("--out", type=Path, required=True, help="results/decoder/{backbone}")
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="resumable checkpoint (default OUT/.ckpt/last.pt; deleted once OUT is written)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, help="CPU threads (default: every core available)")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate-decoder", help="test-split metrics, baselines, images, plots")
    add_params_args(p, "decoder")
    p.add_argument("--features", type=Path, required=True, help="data/features/{backbone}")
    p.add_argument(
        "--manifest",
        type=Path,
        default=Path("data/prepared/manifest.csv"),
        help="the prepared images' manifest.csv",
    )
    p.add_argument("--model", type=Path, required=True, help="OUT/model.safetensors")
    p.add_argument("--out", type=Path, required=True, help="results/decoder/{backbone}")
    p.add_argument("--threads", type=int, help="CPU threads (default: every core available)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("summarize-decoder", help="backbone comparison table + metrics/decoder.json")
    p.add_argument("metrics_files", type=Path, nargs="+", help="results/decoder/*/metrics.json")
    p.add_argument(
        "--metrics",
        type=Path,
        default=Path("metrics/decoder.json"),
        help="small metrics JSON to write (for dvc metrics diff)",
    )
    p.add_argument(
        "--table",
        type=Path,
        default=Path("results/decoder/comparison.csv"),
        help="comparison CSV to write, one row per backbone",
    )
    p.set_defaults(func=_summarize)
