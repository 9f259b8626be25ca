"""Train one tokenizer variant: data, model, optimizer, one visible loop, save.

Trains on seeded random crops of the training split's source photos (every photo at every
step, random scales, positions and flips: :func:`reconlab.tokenizer.photos.sample_photo_crops`),
validates on the prepared val crops, logs every loss component and codebook health, writes a resumable checkpoint every N steps beside the
outputs, and finally ``model.safetensors`` (weights + the config needed to rebuild the model)
and ``train_log.json`` / ``train_log.csv``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from reconlab.checkpoint import checkpoint_path, discard_checkpoint, resume_training, save_training
from reconlab.config import TokenizerConfig
from reconlab.evaluation.image_metrics import count_capped, per_image_metrics
from reconlab.io import load_safetensors, save_safetensors, write_csv, write_json
from reconlab.optim import lr_factor, optimizer_step, set_lr, warmup_steps
from reconlab.provenance import command_code
from reconlab.runtime import (
    compute_record,
    precision_for,
    resolve_device,
    seed_everything,
    set_threads,
)
from reconlab.tokenizer.codebook import CodeCounter, codebook_health
from reconlab.tokenizer.losses import LossTerms, build_perceptual, tokenizer_loss
from reconlab.tokenizer.model import QuantizerOptions, Tokenizer, build_tokenizer
from reconlab.tokenizer.photos import load_split_photos, sample_photo_crops, to_chw

LOG_COLUMNS = (
    "step", "lr", "total", "reconstruction", "perceptual", "commitment", "orthogonal",
    "batch_usage", "batch_perplexity", "ema_dead_codes", "val_psnr", "seconds",
)  # fmt: skip


def model_config(variant: str, cfg: TokenizerConfig) -> dict:
    """Everything needed to rebuild the network: saved inside model.safetensors."""
    return {
        "variant": variant,
        "model": dict(cfg.model),
        "quantizer": dict(cfg.quantizer),
        "orthogonal": cfg.loss["weights"]["orthogonal"] > 0,
    }


def build_from_config(mc: dict) -> Tokenizer:
    return build_tokenizer(
        mc["variant"],
        mc["model"]["base_channels"],
        mc["model"]["max_channels"],
        QuantizerOptions(**mc["quantizer"]),
        mc["orthogonal"],
    )


def save_model(path: str | Path, model: Tokenizer, mc: dict) -> None:
    # sha256 of the tensors in the header: a flipped bit is refused by load_model (issue 14)
    save_safetensors(path, model.state_dict(), {"config": json.dumps(mc, sort_keys=True)})


def load_model(path: str | Path, device: torch.device | str = "cpu") -> Tokenizer:
    """Rebuild a trained tokenizer from ``model.safetensors`` (config from its metadata)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer: {path} does not exist (run train_tokenizer first)")
    state, meta = load_safetensors(path)  # ValueError naming the file when corrupt
    if "config" not in meta:
        raise ValueError(f"tokenizer: {path} has no config metadata; not a reconlab tokenizer")
    model = build_from_config(json.loads(meta["config"]))
    model.load_state_dict(state)
    return model.to(device).eval()


def load_crops(images_dir: str | Path, split: str) -> torch.Tensor:
    """All crops of one split as a uint8 tensor (N, 3, S, S)."""
    files = sorted((Path(images_dir) / split).glob("*.png"))
    if not files:
        raise FileNotFoundError(f"tokenizer: no crops in {Path(images_dir) / split}")
    arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    sizes = {a.shape for a in arrays}
    if len(sizes) != 1:
        raise ValueError(
            f"tokenizer: crops in {Path(images_dir) / split} differ in size: {sorted(sizes)}"
        )
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


@torch.inference_mode()
def evaluate_crops(
    model: Tokenizer, data: torch.Tensor, device: torch.device, batch: int = 16
) -> dict:
    """PSNR/SSIM and codebook health of ``model`` over every crop of a split."""
    model.eval()
    counter = CodeCounter(model.spec.codebook_size)
    psnr, ssim = [], []
    f = model.spec.factor
    for i in range(0, len(data), batch):
        x = data[i : i + batch].float().div(255).to(device)
        x = x[..., : x.shape[-2] // f * f, : x.shape[-1] // f * f]
        out = model(x)
        counter.update(out.indices)
        m = per_image_metrics(out.recon, x)
        psnr += m["psnr"].tolist()
        ssim += m["ssim"].tolist()
    return {
        "psnr": float(np.mean(psnr)),
        "psnr_capped": count_capped(psnr),  # exact reconstructions, counted at PSNR_MAX_DB
        "ssim": float(np.mean(ssim)),
        "n_images": len(psnr),
        **counter.health(),
    }


def train_crop(crop: int, factor: int) -> int:
    """Side of the training crops: ``crop`` rounded down to a multiple of the downsampling
    ``factor`` (each crop is resized from a window of its photo, so no photo size caps it);
    ValueError when none fits."""
    side = crop // factor * factor
    if side < factor:
        raise ValueError(f"tokenizer.train.crop: {crop} px is smaller than f={factor}")
    return side


def train_metadata(cfg: TokenizerConfig, model: Tokenizer, perceptual_note: str) -> dict:
    """How the weights were made: from scratch, the perceptual term, the codebook update."""
    return {
        "weights": f"trained from scratch, seed {cfg.seed}",
        "perceptual": perceptual_note,
        "codebook_loss": (
            f"not used: codebook updated by EMA (decay {cfg.quantizer['decay']})"
            if model.spec.quantizer == "vq"
            else "not used: FSQ has an implicit codebook"
        ),
    }


def log_row(
    step: int, lr: float, terms: LossTerms, indices: torch.Tensor, model: Tokenizer, val: dict,
    seconds: float,
) -> dict:  # fmt: skip
    """One LOG_COLUMNS row: loss terms of the last batch, its codebook health, val PSNR."""
    batch = codebook_health(
        torch.bincount(indices.flatten().cpu(), minlength=model.spec.codebook_size)
    )
    return {
        "step": step, "lr": lr,
        **{k: float(getattr(terms, k).detach()) for k in LOG_COLUMNS[2:7]},
        "batch_usage": batch["codebook_usage"], "batch_perplexity": batch["perplexity"],
        "ema_dead_codes": model.quantizer.ema_dead_codes(), "val_psnr": val["psnr"],
        "seconds": seconds,
    }  # fmt: skip


def train_tokenizer(
    variant: str, cfg: TokenizerConfig, images_dir: str | Path, out_dir: str | Path,
    checkpoint: str | Path | None = None, stop_after: int | None = None,
    data_source: str = "skimage",
) -> dict | None:  # fmt: skip
    """Train ``variant`` on the training photos and write its outputs to ``out_dir``.

    ``images_dir``: the prepared images (``val/`` validates; ``train/`` gives the final train-split
    codebook usage); the training photos are the ``train`` sources of ``images_dir/../manifest.csv``
    read from ``data_source``.

    ``checkpoint``: the resumable checkpoint (default ``out_dir/.ckpt/last.pt``), deleted once
    the outputs are written. ``stop_after``: leave after this many steps with a checkpoint and
    no outputs (a time-limited job); the next call resumes from it. Returns the train log, or
    None when stopped early.
    """
    t = cfg.train
    out_dir = Path(out_dir)
    checkpoint = checkpoint_path(out_dir) if checkpoint is None else checkpoint
    device = resolve_device(cfg.device)
    precision = precision_for(device, cfg.precision, kind="conv")
    threads = set_threads(t["threads"]) if device.type == "cpu" else None
    gen = seed_everything(cfg.seed)

    # -- data, model, loss, optimizer ---------------------------------------------------------
    mc = model_config(variant, cfg)
    model = build_from_config(mc).to(device)
    train_data, val_data = load_crops(images_dir, "train"), load_crops(images_dir, "val")
    manifest = Path(images_dir).parent / "manifest.csv"
    photos = to_chw(load_split_photos(manifest, data_source, "train", t["max_side"]))
    crop = train_crop(t["crop"], model.spec.factor)
    perceptual, perceptual_note = build_perceptual(
        cfg.perceptual["backbone"], cfg.perceptual["weights"]
    )
    if perceptual is not None:
        perceptual = perceptual.to(device)
    weights = dict(cfg.loss["weights"])
    opt = torch.optim.Adam(model.parameters(), lr=t["lr"], betas=tuple(t["betas"]))
    scaler = precision.grad_scaler()
    steps, warmup = t["steps"], warmup_steps(t["warmup_frac"], t["steps"])

    # -- resume -------------------------------------------------------------------------------
    resume_key = {
        "variant": variant, "config": json.loads(json.dumps(cfg.__dict__)), "crop": crop,
        "code": command_code("tokenizer-train"),
    }  # fmt: skip
    start, loop = resume_training(
        checkpoint, resume_key, model, opt, scaler, generators={"batches": gen}
    )
    rows, seconds = loop.get("rows", []), loop.get("seconds", 0.0)

    # -- loop ---------------------------------------------------------------------------------
    bar = tqdm(range(start, steps), desc=f"train {variant}", unit="step", initial=start,
               total=steps, mininterval=5)  # fmt: skip
    tic = time.perf_counter()
    for step in bar:
        set_lr(opt, t["lr"] * lr_factor(step, steps, warmup, t["min_lr_ratio"]))
        model.train()
        x = sample_photo_crops(photos, t["batch_size"], crop, tuple(t["scale"]), gen).to(device)
        with precision.autocast():
            out = model(x)
        terms = tokenizer_loss(out, x, weights, cfg.loss["reconstruction"], perceptual)
        if not torch.isfinite(terms.total):
            raise RuntimeError(
                f"tokenizer {variant}: loss is {float(terms.total)} at step {step + 1}; lower tokenizer.train.lr"
            )
        optimizer_step(terms.total, opt, scaler, t["grad_clip"])
        done = step + 1
        if done % t["log_every"] == 0 or done == steps:
            val = evaluate_crops(model, val_data, device)
            lr = t["lr"] * lr_factor(done, steps, warmup, t["min_lr_ratio"])  # next step's
            elapsed = seconds + time.perf_counter() - tic
            rows.append(log_row(done, lr, terms, out.indices, model, val, elapsed))
            bar.set_postfix(loss=f"{rows[-1]['total']:.4f}", val_psnr=f"{val['psnr']:.2f}")
        stopping = stop_after is not None and done - start >= stop_after and done < steps
        if done % t["checkpoint_every"] == 0 or done == steps or stopping:
            elapsed = seconds + time.perf_counter() - tic
            save_training(checkpoint, resume_key, done, model, opt, scaler,
                          generators={"batches": gen}, rows=rows, seconds=elapsed)  # fmt: skip
        if stopping:
            bar.close()
            return None
    seconds += time.perf_counter() - tic

    log = {
        "variant": variant,
        "model": mc,
        "parameters": sum(p.numel() for p in model.parameters()),
        "metadata": {
            **train_metadata(cfg, model, perceptual_note),
            **compute_record(precision),
            "threads": threads,
            "train_crop": crop,
            "train_photos": len(photos),
            "train_scale": list(t["scale"]),
            "resumed_from_step": start,
        },
        "seconds": seconds,
        "final": {
            "train": evaluate_crops(model, train_data, device),
            "val": evaluate_crops(model, val_data, device),
        },
        "rows": rows,
    }
    save_model(out_dir / "model.safetensors", model, mc)
    write_json(out_dir / "train_log.json", log)
    write_csv(out_dir / "train_log.csv", rows, LOG_COLUMNS)
    discard_checkpoint(checkpoint)  # done: the outputs now hold everything
    return log
