"""Resumable training checkpoints (decision 6), written atomically beside, not inside, outputs.

A training loop calls :func:`save_checkpoint` every N steps and :func:`load_checkpoint` at start;
a job killed mid-run and rerun by Snakemake continues from the last checkpoint. The RNG states
are saved too, so a resumed CPU run ends with the same result as an uninterrupted one.

Integrity: the file starts with one line carrying the sha256 of the torch payload that follows.
A checkpoint whose bytes do not match (flipped bits, truncation, a file from elsewhere) is never
used: :func:`load_checkpoint` logs a warning naming it and training starts over, which ends
with the same result, only later.
"""

from __future__ import annotations

import io
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconlab.io import atomic_path, sha256_bytes

log = logging.getLogger(__name__)
_MAGIC = b"reconlab-checkpoint sha256="


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (model/optimizer state dicts, step, config, ...) plus RNG states atomically."""
    buf = io.BytesIO()
    torch.save(dict(state, rng=rng_state()), buf)
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
    path: str | Path, config: dict[str, Any] | None = None
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
        print(f"{path}: corrupt checkpoint ({problem}); training starts over", flush=True)
        return None
    payload = io.BytesIO(raw.partition(b"\n")[2])
    state = torch.load(payload, map_location="cpu", weights_only=False)
    if config is not None and state.get("config") != config:
        return None
    set_rng_state(state.pop("rng"))
    return state
