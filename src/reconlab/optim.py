"""The optimisation plumbing every training loop shares: LR schedule and the optimizer step.

One schedule (linear warmup, then cosine decay to a floor; nanoGPT's ``get_lr``, SGDR's cosine,
Loshchilov & Hutter 2017) and one step (scaled backward, optional clipping of the global
gradient norm, optimizer step). The loops in ``decoder/train.py``, ``tokenizer/train.py`` and
``sparse/train.py`` call these two by name and stay readable top to bottom.
"""

from __future__ import annotations

import math

import torch


def warmup_steps(fraction: float, total: int) -> int:
    """Warmup length in optimizer steps: ``fraction`` (in [0, 1]) of ``total``, rounded."""
    return round(fraction * total)


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier of 0-based ``step``: linear warmup, then cosine from 1 down to ``min_ratio``.

    Steps ``0 .. warmup-1`` ramp linearly to 1 (``(step + 1) / warmup``); the remaining
    ``total - warmup`` steps follow half a cosine from 1 to ``min_ratio``, which holds after
    ``total``. ``warmup = 0`` is plain cosine decay; ``min_ratio = 0`` decays to zero.
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (the schedule is a function of the step,
    so a resumed run needs no scheduler state)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def optimizer_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    max_norm: float,
) -> None:
    """Backward through ``scaler``, clip the global gradient norm to ``max_norm`` (0: no
    clipping; unscaled first, so the bound is in true gradient units), step, clear the grads."""
    scaler.scale(loss).backward()
    if max_norm > 0:
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
