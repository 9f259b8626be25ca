"""Train one tokenizer variant: data, model, optimizer, one visible loop, save.

Reads the prepared train/val crops, trains on seeded random sub-crops with flips, logs every
loss component and codebook health, writes a resumable checkpoint every N steps beside the
outputs, and finally ``model.safetensors`` (weights + the config needed to rebuild the model)
and ``train_log.json`` / ``train_log.csv``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from reconlab.checkpoint import load_checkpoint, save_checkpoint
from reconlab.config import TokenizerConfig
from reconlab.evaluation.image_metrics import count_capped, per_image_metrics
from reconlab.io import load_safetensors, save_safetensors, write_csv, write_json
from reconlab.runtime import (
    compute_record,
    precision_for,
    resolve_device,
    seed_everything,
    set_threads,
)
from reconlab.tokenizer.codebook import CodeCounter, codebook_health
from reconlab.tokenizer.losses import build_perceptual, tokenizer_loss
from reconlab.tokenizer.model import QuantizerOptions, Tokenizer, build_tokenizer

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


def load_split(images_dir: str | Path, split: str) -> torch.Tensor:
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


def sample_batch(data: torch.Tensor, batch: int, crop: int, gen: torch.Generator) -> torch.Tensor:
    """Seeded random sub-crops with horizontal flips, float in [0, 1]."""
    n, _, h, w = data.shape
    idx = torch.randint(n, (batch,), generator=gen)
    ys = torch.randint(h - crop + 1, (batch,), generator=gen)
    xs = torch.randint(w - crop + 1, (batch,), generator=gen)
    flips = torch.rand(batch, generator=gen) < 0.5
    out = []
    for i, y, x, fl in zip(idx.tolist(), ys.tolist(), xs.tolist(), flips.tolist(), strict=True):
        img = data[i, :, y : y + crop, x : x + crop]
        out.append(img.flip(-1) if fl else img)
    return torch.stack(out).float() / 255


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


def train_tokenizer(
    variant: str, cfg: TokenizerConfig, images_dir: str | Path, out_dir: str | Path,
    checkpoint: str | Path, stop_after: int | None = None,
) -> dict | None:  # fmt: skip
    """Train ``variant`` on ``images_dir/train`` and write its outputs to ``out_dir``.

    ``stop_after``: leave after this many steps with a checkpoint and no outputs (a time-limited
    job); the next call resumes from it. Returns the train log, or None when stopped early.
    """
    t = cfg.train
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    precision = precision_for(device, cfg.precision, kind="conv")
    threads = set_threads(t["threads"]) if device.type == "cpu" else None
    gen = seed_everything(cfg.seed)
    mc = model_config(variant, cfg)
    model = build_from_config(mc).to(device)
    f = model.spec.factor
    train_data, val_data = load_split(images_dir, "train"), load_split(images_dir, "val")
    crop = min(t["crop"], train_data.shape[-1]) // f * f
    if crop < f:
        raise ValueError(
            f"tokenizer.train.crop: crops of {train_data.shape[-1]} px are smaller than f={f}"
        )
    perceptual, perceptual_note = build_perceptual(
        cfg.perceptual["backbone"], cfg.perceptual["weights"]
    )
    if perceptual is not None:
        perceptual = perceptual.to(device)
    weights = dict(cfg.loss["weights"])
    opt = torch.optim.Adam(model.parameters(), lr=t["lr"], betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(  # cosine decay to 10% of lr
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / t["steps"], 1.0)))
    )
    scaler = precision.grad_scaler()

    resume_key = {"variant": variant, "config": json.loads(json.dumps(cfg.__dict__)), "crop": crop}
    state = load_checkpoint(checkpoint, resume_key)
    start, rows, seconds = 0, [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        start, rows, seconds = state["step"], state["rows"], state["seconds"]

    bar = tqdm(
        range(start, t["steps"]),
        desc=f"train {variant}",
        unit="step",
        initial=start,
        total=t["steps"],
        mininterval=5,
    )
    tic = time.perf_counter()
    for step in bar:
        model.train()
        x = sample_batch(train_data, t["batch_size"], crop, gen).to(device)
        with precision.autocast():
            out = model(x)
        terms = tokenizer_loss(out, x, weights, cfg.loss["reconstruction"], perceptual)
        if not torch.isfinite(terms.total):
            raise RuntimeError(
                f"tokenizer {variant}: loss is {float(terms.total)} at step {step + 1}; lower tokenizer.train.lr"
            )
        opt.zero_grad(set_to_none=True)
        scaler.scale(terms.total).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        sched.step()
        done = step + 1
        if done % t["log_every"] == 0 or done == t["steps"]:
            batch = codebook_health(
                torch.bincount(out.indices.flatten().cpu(), minlength=model.spec.codebook_size)
            )
            val = evaluate_crops(model, val_data, device)
            rows.append({
                "step": done, "lr": sched.get_last_lr()[0],
                **{k: float(getattr(terms, k).detach()) for k in LOG_COLUMNS[2:7]},
                "batch_usage": batch["codebook_usage"], "batch_perplexity": batch["perplexity"],
                "ema_dead_codes": model.quantizer.ema_dead_codes(), "val_psnr": val["psnr"],
                "seconds": seconds + time.perf_counter() - tic,
            })  # fmt: skip
            bar.set_postfix(loss=f"{rows[-1]['total']:.4f}", val_psnr=f"{val['psnr']:.2f}")
        stopping = stop_after is not None and done - start >= stop_after and done < t["steps"]
        if (done % t["checkpoint_every"] == 0 or stopping) and done < t["steps"]:
            save_checkpoint(checkpoint, {
                "config": resume_key, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "generator": gen.get_state(), "step": done,
                "rows": rows, "seconds": seconds + time.perf_counter() - tic,
            })  # fmt: skip
        if stopping:
            bar.close()
            return None
    seconds += time.perf_counter() - tic

    final_train = evaluate_crops(model, train_data, device)
    final_val = evaluate_crops(model, val_data, device)
    save_model(out_dir / "model.safetensors", model, mc)
    log = {
        "variant": variant,
        "model": mc,
        "parameters": sum(p.numel() for p in model.parameters()),
        "metadata": {
            "weights": f"trained from scratch, seed {cfg.seed}",
            "perceptual": perceptual_note,
            "codebook_loss": (
                f"not used: codebook updated by EMA (decay {cfg.quantizer['decay']})"
                if model.spec.quantizer == "vq"
                else "not used: FSQ has an implicit codebook"
            ),
            **compute_record(precision),
            "threads": threads,
            "train_crop": crop,
            "train_images": len(train_data),
            "resumed_from_step": start,
        },
        "seconds": seconds,
        "final": {"train": final_train, "val": final_val},
        "rows": rows,
    }
    write_json(out_dir / "train_log.json", log)
    write_csv(out_dir / "train_log.csv", rows, LOG_COLUMNS)
    Path(checkpoint).unlink(missing_ok=True)  # done: the outputs now hold everything
    return log
