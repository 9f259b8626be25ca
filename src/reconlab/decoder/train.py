"""Train a decoder: one readable loop (data, model, optimizer, loop, checkpoint), nanoGPT style.

L1 is the reference objective (optional MSE and SSIM terms). Adam, linear warmup then cosine
decay, gradient clipping, bf16 autocast on CPU (bf16 or fp16 + GradScaler on CUDA), NHWC
memory format. Every ``checkpoint_every`` steps the full state goes to a resumable checkpoint,
so a killed run continues where it stopped and ends exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from reconlab.checkpoint import resume_training, save_training
from reconlab.config import DECODER_EVAL_KEYS, DecoderConfig
from reconlab.decoder.data import DecoderDataset
from reconlab.decoder.model import create_decoder
from reconlab.optim import lr_factor, optimizer_step, set_lr, warmup_steps
from reconlab.runtime import Precision, precision_for, resolve_device, seed_everything

LOG_FIELDS = ["epoch", "step", "lr", "train_loss", "val_loss", "seconds"]


class TrainResult(NamedTuple):
    model: nn.Module
    log: list[dict]  # one row per epoch, LOG_FIELDS
    steps: int  # optimizer steps done in total
    samples_per_s: float  # training throughput of this process (excludes validation)
    resumed_from: int  # step the run continued from (0 = fresh start)


def build_decoder(cfg: DecoderConfig, in_channels: int, patch_size: int) -> nn.Module:
    return create_decoder(
        cfg.arch,
        in_channels=in_channels,
        patch_size=patch_size,
        width=cfg.width,
        depth=cfg.depth,
        norm=cfg.norm,
        upsample=cfg.upsample,
        min_width=cfg.min_width,
    )


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, weights: dict) -> torch.Tensor:
    """Weighted L1 + MSE + (1 - SSIM) in float32; terms with weight 0 are skipped."""
    pred = pred.float()
    loss = weights.get("l1", 1.0) * F.l1_loss(pred, target)
    if weights.get("mse", 0.0):
        loss = loss + weights["mse"] * F.mse_loss(pred, target)
    if weights.get("ssim", 0.0):
        # imported here: torchmetrics takes seconds to import and plain L1 runs never need it
        from torchmetrics.functional.image import structural_similarity_index_measure

        ssim = structural_similarity_index_measure(pred, target, data_range=1.0)
        loss = loss + weights["ssim"] * (1.0 - ssim)
    return loss


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    # One generator per epoch (not one running stream): a resumed run redraws the same order.
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


@torch.no_grad()
def precise_batchnorm(
    model: nn.Module,
    data: DecoderDataset,
    cfg: DecoderConfig,
    device: torch.device,
    prec: Precision,
) -> None:
    """Replace BatchNorm running statistics by their exact average over ``data`` ("precise BN").

    With few optimizer steps, BatchNorm's exponential running averages (momentum 0.1) still
    remember the first, untrained steps, so eval-mode predictions are far worse than the
    training loss says. One forward pass over the training set with the final weights fixes
    that; it uses no randomness, so resumed runs stay identical to uninterrupted ones.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches of this pass
    model.train()
    for start in range(0, len(data), cfg.eval_batch_size):
        idx = torch.arange(start, min(start + cfg.eval_batch_size, len(data)))
        with prec.autocast():
            model(data.batch_features(idx, device, cfg.channels_last))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


@torch.inference_mode()
def validation_loss(
    model: nn.Module,
    data: DecoderDataset,
    cfg: DecoderConfig,
    device: torch.device,
    prec: Precision,
) -> float:
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(data), cfg.eval_batch_size):
        idx = torch.arange(start, min(start + cfg.eval_batch_size, len(data)))
        x = data.batch_features(idx, device, cfg.channels_last)
        with prec.autocast():
            pred = model(x).rgb
        loss = reconstruction_loss(pred, data.batch_images(idx, device), cfg.loss)
        total += float(loss) * len(idx)
        count += len(idx)
    model.train()
    return total / count


def end_of_epoch(
    model: nn.Module,
    train: DecoderDataset,
    val: DecoderDataset | None,
    cfg: DecoderConfig,
    device: torch.device,
    prec: Precision,
) -> float:
    """Precise BatchNorm statistics over ``train``, then the validation loss (NaN without val)."""
    precise_batchnorm(model, train, cfg, device, prec)
    return validation_loss(model, val, cfg, device, prec) if val else math.nan


def train_decoder(
    cfg: DecoderConfig,
    train: DecoderDataset,
    val: DecoderDataset | None,
    patch_size: int,
    checkpoint: Path | None = None,
    fingerprint: dict | None = None,
    max_steps: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``cfg.arch`` on ``train``; validate on ``val`` after every epoch.

    Args:
        cfg: the ``decoder`` params section.
        train, val: features + targets; ``val`` may be None or empty (no val loss).
        patch_size: backbone patch size (output = grid * patch_size pixels).
        checkpoint: resumable checkpoint file (None: no checkpointing). A checkpoint made with
            another ``fingerprint`` is ignored, so changing a param starts over.
        fingerprint: what must match to resume (the decoder params + the feature cache identity).
        max_steps: stop after this many steps in total (the checkpoint stays; a later call
            continues). None trains ``cfg.epochs`` epochs.
        progress: show a tqdm progress bar.
    """
    device = resolve_device(cfg.device)
    prec = precision_for(device, cfg.precision, kind="conv")
    seed_everything(cfg.seed)
    if len(train) == 0:
        raise ValueError("decoder: the train split of the feature cache is empty")

    # -- model and optimizer ------------------------------------------------------------------
    model = build_decoder(cfg, train.channels, patch_size).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = prec.grad_scaler()
    batch = min(cfg.batch_size, len(train))
    steps_per_epoch = len(train) // batch  # drop the ragged tail: BatchNorm dislikes tiny batches
    total = cfg.epochs * steps_per_epoch
    warmup = warmup_steps(cfg.warmup_frac, total)

    # -- resume -------------------------------------------------------------------------------
    train_params = {k: v for k, v in asdict(cfg).items() if k not in DECODER_EVAL_KEYS}
    fingerprint = {"decoder": train_params, **(fingerprint or {})}
    step, loop = resume_training(checkpoint, fingerprint, model, opt, scaler)
    log, run_sum, run_n = loop.get("log", []), loop.get("run_sum", 0.0), loop.get("run_n", 0)
    resumed_from = step
    stop = total if max_steps is None else min(total, max_steps)

    # -- loop ---------------------------------------------------------------------------------
    model.train()
    bar = tqdm(total=total, initial=step, disable=not progress, desc="train", mininterval=2.0)
    t_train, samples, t_epoch = 0.0, 0, time.perf_counter()
    order = None
    while step < stop:
        epoch, i = divmod(step, steps_per_epoch)
        if order is None or i == 0:
            order = epoch_order(len(train), cfg.seed, epoch)
        t0 = time.perf_counter()
        set_lr(opt, cfg.lr * lr_factor(step, total, warmup, cfg.min_lr_ratio))
        idx = order[i * batch : (i + 1) * batch]
        x = train.batch_features(idx, device, cfg.channels_last)
        y = train.batch_images(idx, device)
        with prec.autocast():
            pred = model(x).rgb
        loss = reconstruction_loss(pred, y, cfg.loss)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise RuntimeError(
                f"decoder training: loss is {loss_value} at step {step} (epoch {epoch}); "
                "check the features for NaN/inf or lower decoder.lr"
            )
        optimizer_step(loss, opt, scaler, cfg.grad_clip)
        t_train += time.perf_counter() - t0
        samples += len(idx)
        step += 1
        run_sum, run_n = run_sum + loss_value, run_n + 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)

        if step % steps_per_epoch == 0:  # end of an epoch: validate and log
            log.append(
                {
                    "epoch": epoch + 1,
                    "step": step,
                    "lr": cfg.lr * lr_factor(step, total, warmup, cfg.min_lr_ratio),  # next step's
                    "train_loss": run_sum / run_n,
                    "val_loss": end_of_epoch(model, train, val, cfg, device, prec),
                    "seconds": round(time.perf_counter() - t_epoch, 3),
                }
            )
            run_sum, run_n, t_epoch = 0.0, 0, time.perf_counter()
        if checkpoint and (step % cfg.checkpoint_every == 0 or step == stop):
            save_training(checkpoint, fingerprint, step, model, opt, scaler,
                          log=log, run_sum=run_sum, run_n=run_n)  # fmt: skip
    bar.close()
    model.eval()
    throughput = samples / t_train if t_train > 0 else math.nan
    return TrainResult(model, log, step, throughput, resumed_from)
