"""Source photos of the tokenizer study: loading a split or a folder, and training crops.

Training draws every step's batch from the training split's *source photos* (not from the
prepared crops): each photo of the split at every step (when the batch holds at least as many
crops as there are photos), at a random scale, position and horizontal flip — the
RandomResizedCrop-style augmentation that tokenizers are trained with (e.g. ViTok, LlamaGen),
drawn from a seeded ``torch.Generator`` so a resumed run draws the same crops.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from reconlab.data.decode import decode_image
from reconlab.data.images import list_sources
from reconlab.io import read_csv


def load_split_photos(
    manifest: str | Path, data_source: str, split: str, max_side: int | None = None
) -> list[tuple[str, np.ndarray]]:
    """(label, RGB uint8 (H, W, 3)) of every source photo of ``split`` in ``manifest``.

    ``max_side``: photos whose longer side exceeds it are Lanczos-downscaled to it (memory bound
    for training on a folder of large photos); None keeps the native size.
    Raises ValueError when the split is empty, FileNotFoundError when a photo is missing.
    """
    rows = read_csv(manifest)
    labels = sorted({r["source"] for r in rows if r["split"] == split})
    if not labels:
        raise ValueError(
            f"tokenizer: {manifest} lists no {split} photos (data.splits.{split} is 0?)"
        )
    paths = {s.label: s.path for s in list_sources(data_source)}
    missing = [lb for lb in labels if lb not in paths]
    if missing:
        raise FileNotFoundError(
            f"tokenizer: {split} photo {missing[0]} of {manifest} not found in data.source {data_source!r}"
        )
    return [(lb, limit_side(decode_image(paths[lb]), max_side)) for lb in labels]


def limit_side(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """Lanczos-downscale ``rgb`` so its longer side is at most ``max_side`` (None: unchanged)."""
    h, w = rgb.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return rgb
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def load_folder_photos(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """(label, native RGB uint8) of every image of ``folder`` (recursive, as ``data.source``)."""
    return [(s.label, decode_image(s.path)) for s in list_sources(str(folder))]


def square_resize(rgb: np.ndarray, res: int) -> tuple[np.ndarray, bool]:
    """Centre square crop resized to ``res`` (Lanczos); True when that upsamples the photo."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = rgb[top : top + side, left : left + side]
    out = np.asarray(Image.fromarray(square).resize((res, res), Image.Resampling.LANCZOS))
    return out, res > side


def to_chw(photos: list[tuple[str, np.ndarray]]) -> list[torch.Tensor]:
    """(label, (H, W, 3) uint8) pairs -> (3, H, W) uint8 tensors."""
    return [torch.from_numpy(np.array(rgb)).permute(2, 0, 1) for _, rgb in photos]


def sample_photo_crops(
    photos: list[torch.Tensor], batch: int, crop: int, scale: tuple[float, float],
    gen: torch.Generator,
) -> torch.Tensor:  # fmt: skip
    """One training batch (B, 3, crop, crop), float in [0, 1], from every photo.

    Photos are taken in a fresh random order each step and repeated to fill the batch, so every
    photo is in every batch of at least ``len(photos)`` crops. Per crop: a scale ``s`` drawn
    log-uniformly from ``scale`` (the photo is seen at ``s`` times its size; a window of
    ``crop / s`` pixels, clipped to the photo's shorter side, is resized to ``crop`` with
    antialiased bilinear interpolation), a uniform position and a horizontal flip with p = 0.5.
    """
    lo, hi = scale
    if not 0 < lo <= hi:
        raise ValueError(f"tokenizer.train.scale: need 0 < min <= max, got {list(scale)}")
    order = torch.randperm(len(photos), generator=gen)
    idx = order.repeat(math.ceil(batch / len(photos)))[:batch]
    log_s = torch.empty(batch).uniform_(math.log(lo), math.log(hi), generator=gen)
    u = torch.rand(batch, 3, generator=gen)
    out = []
    for i, ls, (uy, ux, uf) in zip(idx.tolist(), log_s.tolist(), u.tolist(), strict=True):
        img = photos[i]
        h, w = img.shape[-2:]
        win = max(1, min(round(crop / math.exp(ls)), h, w))
        y, x = int(uy * (h - win + 1)), int(ux * (w - win + 1))
        patch = img[None, :, y : y + win, x : x + win].float() / 255
        if win != crop:
            patch = F.interpolate(patch, size=(crop, crop), mode="bilinear", antialias=True,
                                  align_corners=False).clamp(0, 1)  # fmt: skip
        out.append(patch.flip(-1) if uf < 0.5 else patch)
    return torch.cat(out)
