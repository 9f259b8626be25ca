"""Evaluate a trained tokenizer per resolution, ViTok style, and the JPEG baseline on the same photos.

Per resolution the test split's source photos are centre-cropped to a square and resized to
``res x res`` (Lanczos); a resolution above the photo's native shorter side is an upsampled
image, and the result says so (``upsampled``). Writes ``eval_{res}.json`` per resolution and
``test_split.json`` (PSNR and codebook health over every prepared test crop).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reconlab.config import TokenizerConfig
from reconlab.data.decode import decode_image
from reconlab.data.images import list_sources
from reconlab.evaluation.image_metrics import count_capped, not_computed, per_image_metrics
from reconlab.io import read_csv, write_csv, write_json
from reconlab.runtime import compute_record, precision_for, resolve_device, set_threads
from reconlab.tokenizer.codebook import CodeCounter
from reconlab.tokenizer.jpeg import jpeg_curve, to_tensor
from reconlab.tokenizer.memory import PeakMemory
from reconlab.tokenizer.model import Tokenizer
from reconlab.tokenizer.recon import ReconWriter, reference_resolution, write_jpeg_images
from reconlab.tokenizer.tiling import tiled_decode, tiled_tokenize
from reconlab.tokenizer.train import evaluate_crops, load_model, load_split

log = logging.getLogger(__name__)
JPEG_COLUMNS = ("resolution", "quality", "bpp", "psnr", "psnr_capped", "ssim", "n_images")


def load_test_photos(manifest: str | Path, data_source: str) -> list[tuple[str, np.ndarray]]:
    """(label, native RGB uint8) of every source photo of the test split in ``manifest``."""
    rows = read_csv(manifest)
    labels = sorted({r["source"] for r in rows if r["split"] == "test"})
    if not labels:
        raise ValueError(f"tokenizer: {manifest} lists no test photos (data.splits.test is 0?)")
    paths = {s.label: s.path for s in list_sources(data_source)}
    missing = [lb for lb in labels if lb not in paths]
    if missing:
        raise FileNotFoundError(
            f"tokenizer: test photo {missing[0]} of {manifest} not found in data.source {data_source!r}"
        )
    return [(lb, decode_image(paths[lb])) for lb in labels]


def square_resize(rgb: np.ndarray, res: int) -> tuple[np.ndarray, bool]:
    """Centre square crop resized to ``res`` (Lanczos); True when that upsamples the photo."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = rgb[top : top + side, left : left + side]
    out = np.asarray(Image.fromarray(square).resize((res, res), Image.Resampling.LANCZOS))
    return out, res > side


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


def evaluate_resolution(
    model: Tokenizer, photos: list[tuple[str, np.ndarray]], res: int, cfg: TokenizerConfig,
    device: torch.device, recon: ReconWriter | None = None,
) -> dict:  # fmt: skip
    """PSNR, SSIM, bpp, codebook health, encode/decode img/s and peak memory at ``res``.

    ``recon``: collects each photo's reconstruction and PSNR (the report's viewer).
    """
    e = cfg.eval
    precision = precision_for(device, cfg.precision, kind="conv")
    tiled = res > e["tile_above"]
    counter = CodeCounter(model.spec.codebook_size)
    side = min(res, e["tile"])
    warm = torch.rand(1, 3, side, side, device=device)
    with precision.autocast():  # first calls allocate and pick kernels: keep them out of the timing
        round_trip(model, warm, tiled, e["tile"], e["overlap"])
    psnr, ssim, enc, dec, peaks, upsampled = [], [], [], [], [], []
    for label, rgb in photos:
        img, up = square_resize(rgb, res)
        if up:
            upsampled.append(label)
        x = to_tensor([img]).to(device)
        best_enc = best_dec = float("inf")
        for _ in range(e["timing_repeats"]):
            with PeakMemory(device) as mem, precision.autocast():
                indices, recon_img, t_enc, t_dec = round_trip(
                    model, x, tiled, e["tile"], e["overlap"]
                )
            best_enc, best_dec = min(best_enc, t_enc), min(best_dec, t_dec)
            peaks.append(mem.peak_mb)
        enc.append(best_enc)
        dec.append(best_dec)
        counter.update(indices)
        m = per_image_metrics(recon_img, x)
        psnr.append(float(m["psnr"][0]))
        ssim.append(float(m["ssim"][0]))
        if recon is not None:
            recon.add(label, recon_img, psnr[-1])
        del x, recon_img, indices
    health = counter.health()
    fid_reason = (
        "no pretrained Inception/DINOv2 weights (tokenizer.eval.fid_weights is 'none')"
        if e["fid_weights"] in ("none", "", None)
        else f"only {len(photos)} test photo(s): a Frechet distance needs many more images"
    )
    return {
        "variant": model.spec.name,
        "resolution": res,
        "n_images": len(photos),
        "images": [label for label, _ in photos],
        "upsampled": upsampled,
        "resize": "centre square crop, Lanczos resize; listed in 'upsampled' when res > native shorter side",
        "psnr": float(np.mean(psnr)),
        "psnr_capped": count_capped(psnr),  # exact reconstructions, counted at PSNR_MAX_DB
        "ssim": float(np.mean(ssim)),
        "bpp": model.spec.bpp(res, res),
        "tokens_per_image": (res // model.spec.factor) ** 2,
        **health,
        "encode_img_s": len(enc) / sum(enc),
        "decode_img_s": len(dec) / sum(dec),
        "peak_mem_mb": max(peaks),
        "peak_mem_method": PeakMemory(device).method,
        "tiled": tiled,
        "tile": e["tile"] if tiled else None,
        "overlap": e["overlap"] if tiled else None,
        **compute_record(precision),
        "fid": not_computed(fid_reason),
        "fdd": not_computed(fid_reason),
    }


def evaluate_tokenizer(
    model_path: str | Path, cfg: TokenizerConfig, manifest: str | Path, data_source: str,
    out_dir: str | Path,
) -> list[dict]:  # fmt: skip
    """Write ``eval_{res}.json`` for every ``tokenizer.eval.resolutions`` and ``test_split.json``."""
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        set_threads(cfg.train["threads"])
    model = load_model(model_path, device)
    images_dir = Path(manifest).parent / "images"
    split = evaluate_crops(model, load_split(images_dir, "test"), device)
    write_json(out_dir / "test_split.json", {"variant": model.spec.name, "split": "test", **split})
    photos = load_test_photos(manifest, data_source)
    results = []
    for res in sorted(cfg.eval["resolutions"]):
        log.info("%s: evaluating at %d px", model.spec.name, res)
        writer = None
        if res == reference_resolution(cfg.eval):
            writer = ReconWriter(out_dir / "recon", res, model.spec.bpp(res, res))
        r = evaluate_resolution(model, photos, res, cfg, device, writer)
        if writer is not None:
            writer.write()
        write_json(out_dir / f"eval_{res}.json", r)
        results.append(r)
    return results


def jpeg_baseline(
    cfg: TokenizerConfig, manifest: str | Path, data_source: str, out: str | Path
) -> list[dict]:
    """JPEG (Pillow) rate-distortion rows at every evaluation resolution, on the same photos."""
    photos = load_test_photos(manifest, data_source)
    rows = []
    for res in sorted(cfg.eval["resolutions"]):
        images = [square_resize(rgb, res)[0] for _, rgb in photos]
        for row in jpeg_curve(images, cfg.jpeg["qualities"]):
            rows.append({"resolution": res, **row, "n_images": len(images)})
    write_csv(out, rows, JPEG_COLUMNS)
    ref = reference_resolution(cfg.eval)
    at_ref = [(label, square_resize(rgb, ref)[0]) for label, rgb in photos]
    write_jpeg_images(at_ref, cfg.jpeg["qualities"], ref, Path(out).parent / "images")
    return rows
