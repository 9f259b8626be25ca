"""Resumable training checkpoints (decision 6), written atomically beside, not inside, outputs.

Every training loop (decoder, tokenizer, sparse cell) uses the same three calls:
:func:`resume_training` at start, :func:`save_training` every ``checkpoint_every`` steps and
after the last one, and :func:`discard_checkpoint` once its final outputs are written. A job
killed mid-run and rerun by Snakemake continues from the last checkpoint; the global RNG states
and the loop's own generators are saved too, so a resumed CPU run ends with the same result as
an uninterrupted one.

One layout: ``<out>/.ckpt/last.pt`` (:func:`checkpoint_path`) holding the keys ``config`` (what
must match to resume), ``model``, ``optimizer``, ``scaler``, ``ema`` (None without one), ``rng``,
``step`` and ``loop`` (the loop's own progress: its log rows, a reflow teacher, ...). The folder
is beside the outputs, not one of them: Snakemake removes a failed job's outputs, not this.

One policy: the checkpoint is deleted once the outputs that replace it are written. It exists
only to reach those outputs; kept, it would sit in ``results/`` (a DVC output) and be versioned
and pushed with every run — about three model sizes (weights plus Adam's two moments) of state
that no later run can use, since a changed param or code never resumes it.

Integrity: the file starts with one line carrying the sha256 of the torch payload that follows.
A checkpoint whose bytes do not match (flipped bits, truncation, a file from elsewhere) is never
used: :func:`load_checkpoint` logs a warning naming it and training starts over, which ends
with the same result, only later.
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reconlab.io import atomic_path, sha256_bytes

log = logging.getLogger(__name__)
_MAGIC = b"reconlab-checkpoint sha256="


Generators = Mapping[str, torch.Generator]


def checkpoint_path(out: str | Path) -> Path:
    """Where the training run writing to ``out`` keeps its resumable checkpoint."""
    return Path(out) / ".ckpt" / "last.pt"


def discard_checkpoint(path: str | Path) -> None:
    """Delete ``path`` (and its folder when that is left empty): the outputs now hold the run."""
    path = Path(path)
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty (another file in it) or already gone
        path.parent.rmdir()


def rng_state(generators: Generators | None = None) -> dict[str, Any]:
    """Global python / numpy / torch (/ CUDA) RNG states plus each named generator's state."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generators: Generators | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in (generators or {}).items():
        g.set_state(state["generators"][name])


def save_checkpoint(
    path: str | Path, state: dict[str, Any], generators: Generators | None = None
) -> None:
    """Write ``state`` plus the RNG states (global and ``generators``) atomically."""
    buf = io.BytesIO()
    torch.save(dict(state, rng=rng_state(generators)), buf)
    data = buf.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(_MAGIC + sha256_bytes(data).encode() + b"\n" + data)


def checkpoint_problem(raw: bytes) -> str | None:
    """Why the bytes of a checkpoint file cannot be trusted (None when they can)."""
    if not raw.startswith(_MAGIC):
        return "not a reconlab checkpoint (no checksum line)"
    head, sep, data = raw[len(_MAGIC) :].partition(b"\n")
    if not sep or len(head) != 64:
        return "truncated checksum line"
    if sha256_bytes(data) != head.decode("ascii", "replace"):
        return f"sha256 does not match its checksum line ({len(data)} payload bytes)"
    return None


def load_checkpoint(
    path: str | Path, config: dict[str, Any] | None = None, generators: Generators | None = None
) -> dict[str, Any] | None:
    """The saved state, or None when there is none, it is corrupt, or it has another ``config``.

    A checkpoint from a different config is ignored (training starts over) rather than resumed,
    so changing a learning rate never continues a run made with the old one. A corrupt one
    (see :func:`checkpoint_problem`) is ignored with a warning naming the file.
    """
    path = Path(path)
    if not path.exists():
        return None
    raw = path.read_bytes()
    problem = checkpoint_problem(raw)
    if problem:
        log.warning("%s: corrupt checkpoint (%s); not used, training starts over", path, problem)
        return None
    payload = io.BytesIO(raw.partition(b"\n")[2])
    state = torch.load(payload, map_location="cpu", weights_only=False)
    if config is not None and state.get("config") != config:
        return None
    set_rng_state(state.pop("rng"), generators)
    return state


def save_training(
    path: str | Path,
    config: dict[str, Any],
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ema: nn.Module | None = None,
    generators: Generators | None = None,
    **loop: Any,
) -> None:
    """Checkpoint a training loop after ``step`` optimizer steps (the layout in the module doc).

    ``loop`` holds what only this loop needs to continue (log rows, running sums, a teacher).
    """
    state = {
        "config": config,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "step": step,
        "loop": loop,
    }
    save_checkpoint(path, state, generators)


def resume_training(
    path: str | Path | None,
    config: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ema: nn.Module | None = None,
    generators: Generators | None = None,
) -> tuple[int, dict[str, Any]]:
    """Restore what :func:`save_training` wrote into these objects: ``(step, loop)``.

    ``(0, {})`` when ``path`` is None, missing, corrupt or made with another ``config``: the
    loop then starts from scratch with the objects untouched.
    """
    state = load_checkpoint(path, config, generators) if path is not None else None
    if state is None:
        return 0, {}
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    if ema is not None:
        ema.load_state_dict(state["ema"])
    return state["step"], state["loop"]
