"""Data of the report's comparison viewer: per study, test images and their reconstructions.

Groups (each present when its study wrote the per-image files it needs):

* ``decoder``: per test crop, each backbone's decoder reconstruction beside its target
  (``results/decoder/<backbone>/samples/<k>_<name>/{target,pred}.png``, PSNR from
  ``per_sample.csv``);
* ``tokenizer``: per test photo at the reference resolution, each variant's reconstruction
  (``results/tokenizer/<variant>/recon/index.json``) and JPEG at the quality whose bpp is
  nearest to each variant's (``results/tokenizer/jpeg/images/index.json``);
* ``sparse``: per field family, observed pixels / truth / best cell / best baseline
  (``results/sparse/cells/<best>/seed<s>/samples.npz``, ``results/sparse/baseline_samples.npz``),
  with their |error| maps precomputed (a colour map's RGB difference is no value error).

Every image is a data URI stored once in ``assets`` and referenced by id; a tile is
``{"label", "img", "ref" (the target asset its |error| is computed against, or None),
"error" (precomputed |error| asset or None), "psnr", "bpp", "note"}``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from reconlab.report.context import data_uri, lossless_webp

SPARSE_SCALE = 1  # fields are shown with CSS pixelated upscaling; PNGs stay 32x32
MAX_SIDE = 256  # larger images are shown as their centre crop of this size (PSNR: whole image)


class Assets:
    """Data URIs stored once, referenced by a short id."""

    def __init__(self) -> None:
        self.uris: dict[str, str] = {}

    def add_uri(self, uri: str) -> str:
        key = hashlib.sha1(uri.encode()).hexdigest()[:12]
        self.uris.setdefault(key, uri)
        return key

    def add_file(self, path: Path) -> str:
        """An image file, decoded; above :data:`MAX_SIDE` px its centre crop; lossless WebP."""
        from PIL import Image

        with Image.open(path) as im:
            if max(im.size) <= MAX_SIDE:
                return self.add_uri(data_uri(path))
            w, h = im.size
            left, top = max(0, (w - MAX_SIDE) // 2), max(0, (h - MAX_SIDE) // 2)
            crop = im.convert("RGB").crop(
                (left, top, left + min(w, MAX_SIDE), top + min(h, MAX_SIDE))
            )
        return self.add_uri("data:image/webp;base64," + _b64(lossless_webp(crop)))

    def add_png(self, array: np.ndarray) -> str:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="PNG", optimize=True)
        return self.add_uri("data:image/png;base64," + _b64(buf.getvalue()))


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _tile(label: str, img: str, ref: str | None = None, psnr: float | None = None,
          bpp: float | None = None, note: str = "", error: str | None = None) -> dict:  # fmt: skip
    def num(v: Any) -> float | None:
        return None if v is None or not math.isfinite(float(v)) else round(float(v), 3)

    return {"label": label, "img": img, "ref": ref, "error": error, "psnr": num(psnr),
            "bpp": num(bpp), "note": note}  # fmt: skip


def decoder_group(results: Path, backbones: list[str], limit: int, assets: Assets) -> dict | None:
    import pandas as pd

    images: dict[str, list[dict]] = {}
    for b in backbones:
        folder = results / "decoder" / b
        samples = folder / "samples"
        if not samples.is_dir():
            continue
        psnr = {}
        if (folder / "per_sample.csv").exists():
            frame = pd.read_csv(folder / "per_sample.csv")
            psnr = dict(zip(frame["index"], frame["psnr"], strict=True))
        for sample in sorted(p for p in samples.iterdir() if (p / "pred.png").exists()):
            index, _, name = sample.name.partition("_")
            tiles = images.setdefault(name, [])
            target = assets.add_file(sample / "target.png")
            if not tiles:
                tiles.append(_tile("target", target, note="test crop"))
            tiles.append(_tile(b, assets.add_file(sample / "pred.png"), target,
                               psnr.get(int(index))))  # fmt: skip
    if not images:
        return None
    return {
        "id": "decoder",
        "title": "Feature inversion: decoder per backbone",
        "images": [{"name": n, "tiles": t} for n, t in list(images.items())[:limit]],
    }


def tokenizer_group(results: Path, variants: list[str], limit: int, assets: Assets) -> dict | None:
    root = results / "tokenizer"
    jpeg_index = root / "jpeg" / "images" / "index.json"
    if not jpeg_index.exists():
        return None
    jpeg = json.loads(jpeg_index.read_text())
    recon = {
        v: {
            r["image"]: r
            for r in json.loads((root / v / "recon" / "index.json").read_text())["images"]
        }
        for v in variants
        if (root / v / "recon" / "index.json").exists()
    }
    out = []
    for entry in jpeg["images"][:limit]:
        label = entry["image"]
        target = assets.add_file(root / "jpeg" / "images" / entry["target"])
        res = jpeg["resolution"]
        crop = f"{res} px, centre {MAX_SIDE} px shown" if res > MAX_SIDE else f"{res} px"
        tiles = [_tile("target", target, note=crop)]
        nearest: dict[int, list[str]] = {}
        for v, rows in recon.items():
            r = rows.get(label)
            if r is None:
                continue
            tiles.append(_tile(v, assets.add_file(root / v / "recon" / r["file"]), target,
                               r["psnr"], r["bpp"]))  # fmt: skip
            q = min(entry["jpeg"], key=lambda j, bpp=r["bpp"]: abs(j["bpp"] - bpp))
            nearest.setdefault(q["quality"], []).append(v)
        for j in entry["jpeg"]:
            if j["quality"] in nearest:
                tiles.append(_tile(f"JPEG q{j['quality']}",
                                   assets.add_file(root / "jpeg" / "images" / j["file"]), target,
                                   j["psnr"], j["bpp"],
                                   note="nearest bpp to " + ", ".join(nearest[j["quality"]])))  # fmt: skip
        out.append({"name": label, "tiles": tiles})
    if not out:
        return None
    return {"id": "tokenizer", "title": "Tokenizer variants and JPEG at the nearest bpp",
            "images": out}  # fmt: skip


def _colour(values: np.ndarray, cmap: str, lo: float, hi: float, mask: np.ndarray | None = None):
    from matplotlib import colormaps

    normed = np.clip((values - lo) / (hi - lo), 0, 1)
    rgba = colormaps[cmap](normed)
    rgb = (rgba[..., :3] * 255).round().astype(np.uint8)
    if mask is not None:
        rgb[~mask] = (200, 200, 200)  # unobserved pixels: light grey
    if SPARSE_SCALE > 1:
        rgb = rgb.repeat(SPARSE_SCALE, 0).repeat(SPARSE_SCALE, 1)
    return rgb


def sparse_group(results: Path, assets: Assets) -> dict | None:
    root = results / "sparse"
    if not (root / "summary.json").exists() or not (root / "baseline_samples.npz").exists():
        return None
    s = json.loads((root / "summary.json").read_text())
    cell_files = sorted((root / "cells" / s["best_cell"]).glob("seed*/samples.npz"))
    if not cell_files:
        return None
    cell = np.load(cell_files[0])
    base = np.load(root / "baseline_samples.npz")
    labels = [str(x) for x in cell["labels"]]
    methods = s.get("best_baseline_method_by_family", {})
    images = []
    for i, family in enumerate(labels):
        truth = cell["truth"][i]
        mask = np.zeros(truth.size, dtype=bool)
        mask[cell["masks"][i]] = True  # observed pixel indices -> a boolean map
        mask = mask.reshape(truth.shape)
        method = methods.get(family) or str(base["methods"][0])
        pred_base = base[f"pred_{method}"][i]
        pred_cell = cell["pred"][i]

        def err(pred, truth=truth):
            return assets.add_png(_colour(np.abs(np.clip(pred, 0, 1) - truth), "magma", 0, 0.5))

        truth_id = assets.add_png(_colour(truth, "viridis", 0, 1))
        zero = err(truth)
        images.append({"name": family, "tiles": [
            _tile("observed (5%)", assets.add_png(_colour(truth, "viridis", 0, 1, mask)),
                  note=f"{int(mask.sum())} of {mask.size} pixels"),
            _tile("truth", truth_id, error=zero),
            _tile(f"best cell: {s['best_cell']}", assets.add_png(_colour(pred_cell, "viridis", 0, 1)),
                  truth_id, float(cell["psnr_pred"][i]), error=err(pred_cell)),
            _tile(f"best baseline: {method}", assets.add_png(_colour(pred_base, "viridis", 0, 1)),
                  truth_id, float(base[f"psnr_pred_{method}"][i]), error=err(pred_base)),
        ]})  # fmt: skip
    return {"id": "sparse", "title": "Sparse query: observed / truth / best cell / best baseline",
            "images": images}  # fmt: skip


def viewer_data(results: Path, decoder_backbones: list[str], tokenizer_variants: list[str],
                limit: int) -> dict | None:  # fmt: skip
    """``{"groups": [...], "assets": {id: data URI}}``; None when no study has per-image files."""
    assets = Assets()
    groups = [
        g
        for g in (
            decoder_group(results, decoder_backbones, limit, assets),
            tokenizer_group(results, tokenizer_variants, limit, assets),
            sparse_group(results, assets),
        )
        if g is not None
    ]
    return {"groups": groups, "assets": assets.uris} if groups else None
