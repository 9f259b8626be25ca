"""Native-resolution evaluation of a folder, as ViTok's harness evaluates DIV8K.

Every image of ``tokenizer.eval.folder`` (default: the test split's source photos) is encoded
and decoded at its own size: no resize, no crop. An image whose sides are not multiples of the
downsampling factor ``f`` is padded on the bottom/right by edge replication before encoding and
its reconstruction is cut back to the original size, so PSNR/SSIM cover exactly the original
pixels and bpp counts every token that was sent (``ceil(H/f) * ceil(W/f) * log2 K / (H * W)``).
Images whose longer side exceeds ``tile_above`` go through the tiled encode/decode
(``eval.native_tiling``; each of its keys left null takes the value of ``eval``).

Resolution buckets group images by their longer side (edges ``eval.native_buckets``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reconlab.data.decode import decode_image
from reconlab.data.images import list_sources
from reconlab.evaluation.image_metrics import per_image_metrics
from reconlab.tokenizer.codebook import CodeCounter
from reconlab.tokenizer.frechet import PatchSampler
from reconlab.tokenizer.jpeg import to_tensor
from reconlab.tokenizer.model import Tokenizer
from reconlab.tokenizer.photos import load_split_photos
from reconlab.tokenizer.tiling import round_trip


def native_photos(
    folder: str | None, manifest: str | Path, data_source: str
) -> tuple[str, int, Iterator[tuple[str, np.ndarray]]]:
    """(description, count, lazy (label, native RGB uint8) pairs) of the folder to evaluate.

    ``folder`` None: the test split's source photos of ``manifest``; else every image under
    ``folder`` (recursive, decoded one at a time, so a folder of 8K photos fits in memory).
    """
    if folder is None:
        photos = load_split_photos(manifest, data_source, "test")
        return "the test split's source photos", len(photos), iter(photos)
    sources = list_sources(str(folder))  # FileNotFoundError / ValueError naming the folder
    return str(folder), len(sources), ((s.label, decode_image(s.path)) for s in sources)


def bucket_of(longer_side: int, edges: list[int]) -> str:
    """Bucket label of an image by its longer side: ``<=512``, ``513-1024``, ..., ``>4096``."""
    lo = 0
    for edge in sorted(edges):
        if longer_side <= edge:
            return f"<={edge}" if lo == 0 else f"{lo + 1}-{edge}"
        lo = edge
    return f">{lo}"


def pad_to_multiple(x: torch.Tensor, f: int) -> torch.Tensor:
    """Pad (B, C, H, W) on the bottom/right by edge replication to multiples of ``f``."""
    h, w = x.shape[-2:]
    ph, pw = -h % f, -w % f
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


@torch.inference_mode()
def reconstruct_native(
    model: Tokenizer, x: torch.Tensor, tiled: bool, tile: int, overlap: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """x (1, 3, H, W) in [0, 1] -> (indices (1, ceil(H/f), ceil(W/f)), recon (1, 3, H, W))."""
    h, w = x.shape[-2:]
    indices, recon, _, _ = round_trip(model, pad_to_multiple(x, model.spec.factor), tiled, tile,
                                      overlap)  # fmt: skip
    return indices, recon[..., :h, :w]


def evaluate_native(
    model: Tokenizer, photos: Iterator[tuple[str, np.ndarray]], eval_cfg: dict,
    device: torch.device, autocast, sampler: PatchSampler | None = None,
) -> dict:  # fmt: skip
    """Per-image PSNR/SSIM/bpp at native size, means per resolution bucket, codebook health.

    ``autocast``: a context-manager factory (the resolved precision's autocast).
    ``sampler``: collects FID/FDD patches of every (image, reconstruction) pair.
    Returns ``{"images": [row per image (``plots.NATIVE_COLUMNS``)], "buckets": [{"bucket", "n_images",
    "psnr", "ssim", "bpp", "megapixels"}], **codebook health over all images}``.
    Raises ValueError when the folder holds no image.
    """
    counter = CodeCounter(model.spec.codebook_size)
    tiling = native_tiling(eval_cfg)
    rows = []
    for label, rgb in photos:
        h, w = rgb.shape[:2]
        tiled = max(h, w) > tiling["tile_above"]
        x = to_tensor([rgb]).to(device)
        with autocast():
            indices, recon = reconstruct_native(model, x, tiled, tiling["tile"],
                                                tiling["overlap"])  # fmt: skip
        counter.update(indices)
        m = per_image_metrics(recon.float(), x)
        if sampler is not None:
            sampler.add(x, recon)
        rows.append({
            "variant": model.spec.name, "image": label, "height": h, "width": w,
            "megapixels": h * w / 1e6, "bucket": bucket_of(max(h, w), eval_cfg["native_buckets"]),
            "tiled": tiled, "bpp": model.spec.bpp(h, w), "psnr": float(m["psnr"][0]),
            "ssim": float(m["ssim"][0]),
        })  # fmt: skip
        del x, recon, indices
    if not rows:
        raise ValueError("tokenizer.eval.folder: no image to evaluate")
    return {"images": rows, "buckets": bucket_means(rows), **counter.health()}


def native_tiling(eval_cfg: dict) -> dict:
    """tile, overlap, tile_above of the native evaluation: ``eval.native_tiling`` over ``eval``."""
    own = eval_cfg.get("native_tiling") or {}
    return {k: eval_cfg[k] if own.get(k) is None else own[k]
            for k in ("tile", "overlap", "tile_above")}  # fmt: skip


def bucket_means(rows: list[dict]) -> list[dict]:
    """Mean PSNR, SSIM, bpp and megapixels per bucket, buckets ordered by size."""
    order = sorted({r["bucket"] for r in rows}, key=lambda b: _bucket_key(b))
    out = []
    for b in order:
        group = [r for r in rows if r["bucket"] == b]
        out.append({"bucket": b, "n_images": len(group),
                    **{k: float(np.mean([r[k] for r in group]))
                       for k in ("psnr", "ssim", "bpp", "megapixels")}})  # fmt: skip
    return out


def _bucket_key(label: str) -> float:
    if label.startswith(">"):
        return math.inf
    return float(label.split("-")[-1].lstrip("<="))
