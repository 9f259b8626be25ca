"""Tiled encode/decode with overlap and blending: activation memory independent of image size.

Encoding: overlapping pixel tiles are encoded and quantized one at a time; each tile keeps the
latents up to the midpoint of its overlaps, so every kept latent was computed at least
``overlap / 2`` pixels from a tile border (away from the zero-padding that makes tiles differ).
Decoding: overlapping latent tiles are decoded one at a time and blended with linear ramps
over the central half of each overlap (weights sum to one), which hides any residual
difference at the seams.
No layer of the model looks at the whole image (no GroupNorm, no attention), so with an
overlap larger than the receptive field the result equals the untiled one.
"""

from __future__ import annotations

import time

import torch

from reconlab.tokenizer.model import Tokenizer


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` covering ``size`` with at least ``overlap`` overlap."""
    if tile >= size:
        return [0]
    if overlap >= tile:
        raise ValueError(
            f"tokenizer.eval.overlap ({overlap}) must be smaller than the tile ({tile})"
        )
    step = tile - overlap
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def _cuts(starts: list[int], tile: int, size: int, align: int) -> list[tuple[int, int]]:
    """Kept interval of each tile: from the previous overlap's midpoint to the next one's."""
    bounds = [0]
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        bounds.append((b + a + tile) // 2 // align * align)
    bounds.append(size)
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _ramp(starts: list[int], tile: int, size: int, i: int, device: torch.device) -> torch.Tensor:
    """1-D blending weight of tile ``i``.

    Across each overlap with a neighbour the weight ramps linearly over the central half of the
    overlap and is 0 (or 1) in the outer quarters, so the pixels nearest a tile border, where
    zero padding makes a tile differ from the whole image, never contribute.
    """
    w = torch.ones(min(tile, size), device=device)
    pos = torch.arange(w.numel(), device=device, dtype=torch.float32) + starts[i] + 0.5
    if i > 0 and (n := starts[i - 1] + tile - starts[i]) > 0:  # overlap with the previous tile
        lo = starts[i] + n / 4
        w = torch.minimum(w, ((pos - lo) / (n / 2)).clamp(0, 1))
    if i < len(starts) - 1 and (n := starts[i] + tile - starts[i + 1]) > 0:  # with the next one
        lo = starts[i + 1] + n / 4
        w = torch.minimum(w, 1 - ((pos - lo) / (n / 2)).clamp(0, 1))
    return w


@torch.inference_mode()
def tiled_tokenize(
    model: Tokenizer, x: torch.Tensor, tile: int, overlap: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, 3, H, W) -> (indices (B, H/f, W/f), quantized (B, D, H/f, W/f)), tile by tile."""
    f = model.spec.factor
    _, _, h, w = x.shape
    if h % f or w % f or tile % f or overlap % f:
        raise ValueError(f"tiled_tokenize: image, tile and overlap must be multiples of f={f}")
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    indices = quantized = None
    for (y0, y1), ty in zip(_cuts(ys, tile, h, f), ys, strict=True):
        for (x0, x1), tx in zip(_cuts(xs, tile, w, f), xs, strict=True):
            z = model.encode(x[:, :, ty : ty + tile, tx : tx + tile])
            z = z[:, :, (y0 - ty) // f : (y1 - ty) // f, (x0 - tx) // f : (x1 - tx) // f]
            q = model.quantize(z)
            if indices is None:
                indices = q.indices.new_zeros(x.shape[0], h // f, w // f)
                quantized = q.quantized.new_zeros(x.shape[0], q.quantized.shape[1], h // f, w // f)
            indices[:, y0 // f : y1 // f, x0 // f : x1 // f] = q.indices
            quantized[:, :, y0 // f : y1 // f, x0 // f : x1 // f] = q.quantized
    return indices, quantized


@torch.inference_mode()
def tiled_decode(
    model: Tokenizer, quantized: torch.Tensor, tile: int, overlap: int
) -> torch.Tensor:
    """quantized (B, D, h, w) -> image (B, 3, h*f, w*f), decoded tile by tile and blended."""
    f = model.spec.factor
    lt, lo = max(tile // f, 1), overlap // f
    b, _, h, w = quantized.shape
    ys, xs = tile_starts(h, lt, lo), tile_starts(w, lt, lo)
    out = torch.zeros(b, 3, h * f, w * f, device=quantized.device)
    for i, ty in enumerate(ys):
        wy = _ramp(ys, lt, h, i, quantized.device).repeat_interleave(f)
        for j, tx in enumerate(xs):
            wx = _ramp(xs, lt, w, j, quantized.device).repeat_interleave(f)
            patch = model.decode(quantized[:, :, ty : ty + lt, tx : tx + lt]).float()
            ph, pw = patch.shape[-2:]
            out[:, :, ty * f : ty * f + ph, tx * f : tx * f + pw] += patch * (
                wy[:, None] * wx[None, :]
            )
    return out


def round_trip(
    model: Tokenizer, x: torch.Tensor, tiled: bool, tile: int, overlap: int
) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """Encode (tokens) then decode one batch; returns (indices, recon, encode s, decode s)."""
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        sync()
        t0 = time.perf_counter()
        if tiled:
            indices, quantized = tiled_tokenize(model, x, tile, overlap)
        else:
            q = model.quantize(model.encode(x))
            indices, quantized = q.indices, q.quantized
        sync()
        t1 = time.perf_counter()
        recon = tiled_decode(model, quantized, tile, overlap) if tiled else model.decode(quantized)
        sync()
        t2 = time.perf_counter()
    return indices, recon.float(), t1 - t0, t2 - t1
