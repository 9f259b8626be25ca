"""Train one cell (a set of techniques, one seed) and evaluate it on all pixels of every field.

``cfg`` is a cell's config (see :func:`reconlab.sparse.grid.cell_config`): the ``sparse`` section
with ``techniques`` reduced to the active ones and no grid keys. The loop reads top to bottom:
data, model, optimizer, loop (flow-matching loss, clipping, EMA, reflow teacher), evaluation.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reconlab.evaluation.image_metrics import psnr_per_image
from reconlab.sparse.flow import flow_matching_loss, sample_values
from reconlab.sparse.models import create_model
from reconlab.sparse.task import (
    Batch,
    FieldStream,
    QuerySampler,
    eval_masks,
    gather_batch,
    pixel_coords,
)
from reconlab.sparse.techniques import check_techniques

log = logging.getLogger(__name__)


def build_model(cfg: dict, size: int, seed: int) -> nn.Module:
    """The cell's velocity network; model-side techniques switch its architecture."""
    tech = cfg["techniques"]
    m = cfg["model"]
    fourier = dict(m["fourier"])
    if "multiscale" in tech:
        fourier = {"kind": "multiscale", "octaves": tech["multiscale"]["octaves"]}
    torch.manual_seed(seed)
    return create_model(
        m["backbone"],
        width=m["width"],
        heads=m["heads"],
        enc_layers=m["enc_layers"],
        dec_layers=m["dec_layers"],
        distance_bias=m["distance_bias"],
        kernel_prior="waves" if "wave_prior" in tech else m["kernel_prior"],
        waves=tech["wave_prior"]["waves"] if "wave_prior" in tech else 4,
        fourier=fourier,
        self_cond="self_cond" in tech,
        adaln="adaln" in tech,
        drop_path=tech["droppath"]["rate"] if "droppath" in tech else 0.0,
        size=size,
        generator=torch.Generator().manual_seed(seed),
    )


def make_sampler(cfg: dict, fields: np.ndarray, seed: int, stream: dict | None) -> QuerySampler:
    """The training data of ``train.data``: fresh fields from the generator described by
    ``stream`` (the fields folder's index.json) or rows of the stored ``fields`` (N, S, S).
    Raises ValueError when streaming is asked for without ``stream``."""
    args = (cfg["observed"], cfg["queries"], seed + 1, cfg["fixed_queries"])
    if cfg["train"].get("data", "stored") == "stream":
        if stream is None:
            raise ValueError("sparse.train.data: stream needs the fields' index.json")
        return FieldStream(stream, *args)
    flat = torch.from_numpy(fields.reshape(len(fields), -1)).float()
    return QuerySampler(flat, *args)


def train_cell(
    cfg: dict,
    fields: np.ndarray,
    seed: int,
    checkpoint: str | Path | None = None,
    stream: dict | None = None,
    on_step=None,
) -> tuple[nn.Module, dict]:
    """Train on streamed fields (``train.data: stream``; ``stream`` is the fields' index.json)
    or on the stored ``fields`` (N, S, S); return (the model to evaluate, history).

    The returned model is the EMA copy when ``ema`` is on. A NaN loss stops with the step.
    With ``checkpoint``, state is saved every ``train.checkpoint_every`` steps and resumed.
    ``on_step(steps_done, model_to_evaluate)`` is called after every step; what it returns other
    than None is appended to ``history["curve"]`` (checkpointed with it: learning curves).
    """
    from reconlab.checkpoint import resume_training, save_training
    from reconlab.optim import lr_factor, optimizer_step, set_lr, warmup_steps
    from reconlab.provenance import module_code
    from reconlab.runtime import compute_record, precision_for, resolve_device

    tech = cfg["techniques"]
    check_techniques(tech)
    tr = cfg["train"]
    steps, size = tr["steps"], fields.shape[-1]
    sampler = make_sampler(cfg, fields, seed, stream)
    loss_gen = torch.Generator().manual_seed(seed + 2)
    generators = {"queries": sampler.generator, "loss": loss_gen}
    device = resolve_device(tr["device"])
    precision = precision_for(device, tr["precision"], kind="linear")
    scaler = precision.grad_scaler()
    model = build_model(cfg, size, seed).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=tr["lr"], weight_decay=tr["weight_decay"])
    ema = None
    if "ema" in tech:  # timm imported only here: ~2 CPU-s per cell job that does not need it
        from timm.utils import ModelEmaV3

        # A constant decay (update() without a step: no timm warmup), parameters only: the
        # buffers here are constants (kernel widths), so copying them equals keeping them.
        ema = ModelEmaV3(model, decay=tech["ema"]["decay"], exclude_buffers=True)
    # clip_warmup is one of the studied techniques: without it, no warmup and no clipping
    clip = tech.get("clip_warmup", {"max_norm": 0.0, "warmup": 0.0})
    warmup = warmup_steps(clip["warmup"], steps)
    teacher = None
    reflow_at = int(tech["reflow"]["start"] * steps) if "reflow" in tech else None
    compute = compute_record(precision)
    # A checkpoint resumes only with the same params, seed and training code (the import
    # closure of this module, the same hash mechanism the Snakemake rules use).
    key = cfg | {"seed": seed, "code": module_code(__name__)}
    start, loop = resume_training(checkpoint, key, model, opt, scaler, ema, generators)
    history = loop.get("history", {"step": [], "loss": [], "curve": []})
    if loop.get("teacher") is not None:
        teacher = build_model(cfg, size, seed).to(device).eval()
        teacher.load_state_dict(loop["teacher"])
    if start:
        log.info("resumed from %s at step %d", checkpoint, start)
    t0 = time.perf_counter()
    for step in range(start, steps):
        lr = tr["lr"] * lr_factor(step, steps, warmup, 0.0)  # (warmup +) cosine decay to 0
        set_lr(opt, lr)
        if step == reflow_at:  # rectified flow: freeze the current model as the coupling teacher
            teacher = copy.deepcopy(ema.module if ema is not None else model).eval()
        model.train()
        batch = Batch(*(x.to(device) for x in sampler.sample(tr["batch_size"])))
        with precision.autocast():
            terms = flow_matching_loss(
                model, batch, tech, loss_gen, teacher, cfg["model"]["prediction"]
            )
        if not torch.isfinite(terms.total):
            raise RuntimeError(
                f"sparse: loss is {terms.total.item()} at step {step}; lower train.lr"
            )
        optimizer_step(terms.total, opt, scaler, clip["max_norm"])
        if ema is not None:
            ema.update(model)
        if step % max(1, steps // 20) == 0 or step == steps - 1:
            history["step"].append(step)
            history["loss"].append(round(terms.total.item(), 6))
            log.info("step %d loss %.4f lr %.2e", step, terms.total.item(), lr)
        if on_step is not None and (point := on_step(step + 1, ema if ema is not None else model)):
            history["curve"].append(point)
        every, done = tr["checkpoint_every"], step + 1
        if checkpoint is not None and every and (done % every == 0 or done == steps):
            save_training(
                checkpoint, key, done, model, opt, scaler, ema, generators, history=history,
                teacher=teacher.state_dict() if teacher is not None else None,
            )  # fmt: skip
    history["compute"] = compute
    history["train_seconds"] = round(time.perf_counter() - t0, 2)
    history["seconds_per_step"] = round(history["train_seconds"] / max(1, steps - start), 4)
    return (ema.module if ema is not None else model).eval(), history


@torch.no_grad()
def predict_fields(
    model: nn.Module,
    cfg: dict,
    fields: np.ndarray,
    masks: np.ndarray,
    seed: int,
    chunk: int = 32,
) -> np.ndarray:
    """Sample every pixel of each field from its observed pixels ``masks``: (M, S, S) unclamped.

    ``chunk`` fields are sampled together: 32 measured 15-30 % less CPU than 8 on the 2-core EPYC
    with bit-identical values (each field is its own independent sample).
    """
    size = fields.shape[-1]
    device = next(model.parameters()).device
    coords = pixel_coords(size)
    flat = torch.from_numpy(fields.reshape(len(fields), -1)).float()
    every = torch.arange(size * size)
    gen = torch.Generator().manual_seed(seed + 3)
    out = []
    for i in range(0, len(flat), chunk):
        f = flat[i : i + chunk]
        obs = torch.from_numpy(masks[i : i + chunk])
        batch = gather_batch(f, coords, obs, every.expand(len(f), -1))
        batch = Batch(*(x.to(device) for x in batch))
        s = cfg["sampler"]
        x0 = None  # noise: drawn from gen
        if s["start"] == "median":
            x0 = torch.zeros(batch.query_xy.shape[:2], device=device)
        out.append(
            sample_values(
                model,
                batch,
                s["steps"],
                s["method"],
                x0,
                cfg["techniques"],
                gen,
                cfg["model"]["prediction"],
            )
        )
    return torch.cat(out).cpu().reshape(fields.shape).numpy()


def field_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per-field metrics over all pixels: psnr (clamped to [0, 1]), psnr_unclamped, mse, mae, corr."""
    p = pred.reshape(len(pred), -1).astype(np.float64)
    t = truth.reshape(len(truth), -1).astype(np.float64)
    pc = np.clip(p, 0, 1)
    mse = ((pc - t) ** 2).mean(1)
    pz, tz = p - p.mean(1, keepdims=True), t - t.mean(1, keepdims=True)
    denom = np.sqrt((pz**2).sum(1) * (tz**2).sum(1))
    corr = np.where(denom > 0, (pz * tz).sum(1) / np.maximum(denom, 1e-12), 0.0)
    return {
        "psnr": psnr_per_image(pc, t),  # capped at image_metrics.PSNR_MAX_DB (one policy)
        "psnr_unclamped": psnr_per_image(p, t),
        "mse": mse,
        "mae": np.abs(pc - t).mean(1),
        "corr": corr,
    }


def summarize_by_family(
    metrics: dict[str, np.ndarray], family: np.ndarray, names: list[str]
) -> dict:
    """{"all": {metric: mean}, "by_family": {family: {metric: mean}}} (plain floats)."""

    def means(sel):
        return {k: round(float(v[sel].mean()), 4) for k, v in metrics.items()}

    out = {"all": means(np.ones(len(family), bool)), "by_family": {}}
    for i, name in enumerate(names):
        sel = family == i
        if sel.any():
            out["by_family"][name] = means(sel)
    return out


def evaluation_masks(cfg: dict, n_fields: int, n_pixels: int, split: str) -> np.ndarray:
    """The seeded observed-pixel masks every model and baseline uses for ``split``."""
    return eval_masks(n_fields, n_pixels, cfg["observed"], cfg["mask_seed"], split)


def overfit_one_field(
    cfg: dict,
    field: np.ndarray,
    steps: int,
    lr: float,
    batch_size: int = 8,
    seed: int = 0,
) -> tuple[np.ndarray, dict]:
    """Train on a single field (1, S, S) and sample all its pixels: the capacity sanity check."""
    train = dict(
        cfg["train"], steps=steps, lr=lr, batch_size=batch_size, checkpoint_every=0, data="stored"
    )
    cfg = dict(cfg, train=train)
    model, history = train_cell(cfg, field, seed)
    masks = evaluation_masks(cfg, 1, field[0].size, "train")
    return predict_fields(model, cfg, field, masks, seed), history
