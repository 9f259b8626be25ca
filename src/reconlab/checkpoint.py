"""Resumable training checkpoints (decision 6), written atomically beside, not inside, outputs.

A training loop calls :func:`save_checkpoint` every N steps and :func:`load_checkpoint` at start;
a job killed mid-run and rerun by Snakemake continues from the last checkpoint. The RNG states
are saved too, so a resumed CPU run ends with the same result as an uninterrupted one.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconlab.io import atomic_path


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
    payload = dict(state, rng=rng_state())
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(
    path: str | Path, config: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The saved state, or None when there is none or it was made with a different ``config``.

    A checkpoint from a different config is ignored (training starts over) rather than resumed,
    so changing a learning rate never continues a run made with the old one.
    """
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if config is not None and state.get("config") != config:
        return None
    set_rng_state(state.pop("rng"))
    return state
