"""The feature-inversion study as three file-to-file steps (what the CLI and the rules call).

``run_training``:   feature cache + prepared images -> model.safetensors, train_log.csv, train.json
``run_evaluation``: + the trained model             -> metrics.json, per_sample.csv, samples/, plots
``summarize_study`` (:mod:`reconlab.decoder.summary`, torch-free): every backbone's metrics.json
-> metrics/decoder.json + comparison.csv
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from reconlab.checkpoint import discard_checkpoint
from reconlab.config import DECODER_EVAL_KEYS, DecoderConfig
from reconlab.decoder.baselines import mean_image
from reconlab.decoder.data import load_decoder_dataset
from reconlab.decoder.model import count_parameters
from reconlab.decoder.train import LOG_FIELDS, build_decoder, train_decoder
from reconlab.features.cache import FeatureCache
from reconlab.io import (
    atomic_dir,
    load_safetensors,
    null_non_finite,
    read_csv,
    save_safetensors,
    write_csv,
    write_json,
)
from reconlab.provenance import command_code
from reconlab.runtime import compute_record, precision_for, resolve_device

MODEL_FILE = "model.safetensors"


def _train_params(cfg: DecoderConfig) -> dict[str, Any]:
    return {k: v for k, v in asdict(cfg).items() if k not in DECODER_EVAL_KEYS}


def run_training(
    cfg: DecoderConfig,
    features: Path,
    prepared: Path,
    out: Path,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train one decoder on one backbone's cache; write model, log and train.json to ``out``."""
    cache = FeatureCache.open(features)
    identity = cache.fingerprint()
    train = load_decoder_dataset(cache, "train", cfg.inputs, prepared)
    if train is None:
        raise ValueError(f"{cache.index_path}: the train split is empty; nothing to train on")
    val = load_decoder_dataset(cache, "val", cfg.inputs, prepared)
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    # A checkpoint resumes only with the same params, the same cache and the same training code
    # (the import closure of `reconlab train-decoder`, the hash its Snakemake rule carries).
    code = command_code("train-decoder")
    fingerprint = {"features": identity, "code": code}
    result = train_decoder(
        cfg, train, val, identity["patch_size"], checkpoint, fingerprint,
        progress=progress,
    )  # fmt: skip
    info = {
        "backbone_id": identity["backbone_id"],
        "features": identity,
        "decoder": _train_params(cfg),
        "in_channels": train.channels,
        "parameters": count_parameters(result.model),
        "n_train": len(train),
        "n_val": len(val) if val else 0,
        "steps": result.steps,
        "resumed_from_step": result.resumed_from,
        "train_samples_per_s": result.samples_per_s,
        "seconds": round(time.perf_counter() - t0, 3),
        **compute_record(precision_for(device, cfg.precision, kind="conv")),
    }
    out.mkdir(parents=True, exist_ok=True)
    # sha256 of the tensors in the header: a flipped bit is refused by load_trained (issue 14)
    meta = {"train": json.dumps(null_non_finite(info), sort_keys=True)}
    save_safetensors(out / MODEL_FILE, result.model.state_dict(), meta)
    write_csv(out / "train_log.csv", result.log, LOG_FIELDS)
    write_json(out / "train.json", null_non_finite(info))
    if checkpoint is not None:
        discard_checkpoint(checkpoint)  # the outputs above now hold the finished run
    return info


def load_trained(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The decoder in ``model.safetensors`` (rebuilt from the params saved in it) and its info."""
    state, meta = load_safetensors(path)  # ValueError naming the file when corrupt
    info = json.loads(meta["train"])
    cfg = DecoderConfig(**info["decoder"])
    model = build_decoder(cfg, info["in_channels"], info["features"]["patch_size"])
    model.load_state_dict(state)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.to(device).eval(), info


def run_evaluation(
    cfg: DecoderConfig, features: Path, prepared: Path, model_file: Path, out: Path
) -> dict[str, Any]:
    """Evaluate on the test split; write metrics.json, per_sample.csv, samples/ and figures."""
    # Imported here, not at the top: torchmetrics and matplotlib cost seconds that training skips.
    from reconlab.decoder.evaluate import evaluate_decoder, per_sample_fields
    from reconlab.decoder.perceptual import load_lpips
    from reconlab.decoder.plots import compare_pred_target, comparison_grid, loss_plot, save_png

    cache = FeatureCache.open(features)
    device = resolve_device(cfg.device)
    model, info = load_trained(model_file, device)
    identity = cache.fingerprint()
    if info["features"] != identity:
        raise ValueError(f"{model_file}: trained on another feature cache than {cache.index_path}")
    train_cfg = DecoderConfig(
        **{**info["decoder"], **{k: getattr(cfg, k) for k in DECODER_EVAL_KEYS}}
    )
    lpips, lpips_id = (None, None)
    if cfg.lpips_weights:
        lpips, lpips_id = load_lpips(cfg.lpips_weights, cfg.lpips_net)
    train = load_decoder_dataset(cache, "train", train_cfg.inputs, prepared)
    test = load_decoder_dataset(cache, "test", train_cfg.inputs, prepared)
    if test is None:
        raise ValueError(f"{cache.index_path}: the test split is empty; nothing to evaluate")
    prec = precision_for(device, train_cfg.precision, kind="conv")
    files = cache.split("test").files
    result = evaluate_decoder(
        model, test, mean_image(train.images), train_cfg, device, prec, files, lpips
    )

    untrained = identity["untrained"]
    name = identity["backbone_id"]
    metrics = {
        **result.summary,
        **cache.provenance(),
        "decoder_arch": train_cfg.arch,
        "decoder_parameters": info["parameters"],
        "n_train": info["n_train"],
        "train_samples_per_s": info["train_samples_per_s"],
        "lpips_weights_id": lpips_id,
        **compute_record(prec),
    }
    write_json(out / "metrics.json", null_non_finite(metrics))
    write_csv(out / "per_sample.csv", result.rows, per_sample_fields(lpips is not None))
    with atomic_dir(out / "samples") as tmp:
        for k, target in enumerate(result.samples["target"]):
            folder = tmp / f"{k:03d}_{Path(files[k]).stem}"
            save_png(result.samples["pred"][k], folder / "pred.png")
            save_png(target, folder / "target.png")
            compare_pred_target(
                result.samples["pred"][k], target, result.rows[k]["psnr"],
                folder / "compare_pred_target.png", untrained,
            )  # fmt: skip
    psnrs = [r["psnr"] for r in result.rows]
    comparison_grid(
        result.samples, psnrs, out / "comparison.png", f"{name}: test images", untrained
    )
    log = read_csv(out / "train_log.csv") if (out / "train_log.csv").exists() else []
    loss_plot(log, out / "loss_plot.png", f"{name}: decoder loss", untrained)
    return metrics
