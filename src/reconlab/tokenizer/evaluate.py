"""Evaluate a trained tokenizer per resolution, ViTok style, and the JPEG baseline on the same photos.

Per resolution the test split's source photos are centre-cropped to a square and resized to
``res x res`` (Lanczos); a resolution above the photo's native shorter side is an upsampled
image, and the result says so (``upsampled``). Writes ``eval_{res}.json`` per resolution,
``eval_native.json`` (every image of ``eval.folder`` at its own size: ``native.py``) and
``test_split.json`` (PSNR and codebook health over every prepared test crop). Every
``eval_*.json`` carries FID and FDD with sample counts, bootstrap intervals and weights identity
(``frechet.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from reconlab.config import TokenizerConfig
from reconlab.evaluation.image_metrics import count_capped, not_computed, per_image_metrics
from reconlab.io import write_csv, write_json
from reconlab.runtime import compute_record, precision_for, resolve_device, set_threads
from reconlab.tokenizer.codebook import CodeCounter
from reconlab.tokenizer.frechet import (
    FrechetNets,
    PatchSampler,
    build_frechet_nets,
    frechet_scores,
)
from reconlab.tokenizer.jpeg import jpeg_curve, to_tensor
from reconlab.tokenizer.memory import PeakMemory
from reconlab.tokenizer.model import Tokenizer
from reconlab.tokenizer.native import evaluate_native, native_photos
from reconlab.tokenizer.photos import load_split_photos, square_resize
from reconlab.tokenizer.recon import ReconWriter, reference_resolution, write_jpeg_images
from reconlab.tokenizer.tiling import round_trip
from reconlab.tokenizer.train import evaluate_crops, load_crops, load_model

log = logging.getLogger(__name__)
JPEG_COLUMNS = ("resolution", "quality", "bpp", "psnr", "psnr_capped", "ssim", "n_images")


def load_test_photos(manifest: str | Path, data_source: str) -> list[tuple[str, np.ndarray]]:
    """(label, native RGB uint8) of every source photo of the test split in ``manifest``."""
    return load_split_photos(manifest, data_source, "test")


def evaluate_resolution(
    model: Tokenizer, photos: list[tuple[str, np.ndarray]], res: int, cfg: TokenizerConfig,
    device: torch.device, recon: ReconWriter | None = None, nets: FrechetNets | None = None,
) -> dict:  # fmt: skip
    """PSNR, SSIM, bpp, codebook health, encode/decode img/s, peak memory, FID, FDD at ``res``.

    ``recon``: collects each photo's reconstruction and PSNR (the report's viewer).
    ``nets``: FID/FDD networks (:func:`build_frechet_nets`); None: not computed.
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
    sampler = PatchSampler(
        e["frechet"]["patch"], e["frechet"]["max_samples"], len(photos), e["frechet"]["seed"]
    )
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
        sampler.add(x, recon_img)
        del x, recon_img, indices
    health = counter.health()
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
        **frechet_or_not(nets, sampler, e["frechet"]),
    }


def frechet_or_not(nets: FrechetNets | None, sampler: PatchSampler, frechet: dict) -> dict:
    """FID/FDD from ``nets``, or both "not computed" when no networks were built."""
    if nets is None:
        return {k: not_computed("FID/FDD networks not built") for k in ("fid", "fdd")}
    return frechet_scores(nets, sampler, frechet)


def evaluate_tokenizer(
    model_path: str | Path, cfg: TokenizerConfig, manifest: str | Path, data_source: str,
    out_dir: str | Path, fdd_backbone: dict | None = None,
) -> list[dict]:  # fmt: skip
    """Write ``eval_{res}.json`` for every ``tokenizer.eval.resolutions``, ``eval_native.json``
    (every image of ``tokenizer.eval.folder`` at its own size) and ``test_split.json``.

    ``fdd_backbone``: the ``features.backbones`` entry (with ``seed``) named by
    ``tokenizer.eval.frechet.backbone`` (:func:`frechet_backbone`); None: no FDD.
    """
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        set_threads(cfg.train["threads"])
    model = load_model(model_path, device)
    images_dir = Path(manifest).parent / "images"
    split = evaluate_crops(model, load_crops(images_dir, "test"), device)
    write_json(out_dir / "test_split.json", {"variant": model.spec.name, "split": "test", **split})
    photos = load_test_photos(manifest, data_source)
    nets = build_frechet_nets(cfg.eval["frechet"], fdd_backbone)
    results = []
    for res in sorted(cfg.eval["resolutions"]):
        log.info("%s: evaluating at %d px", model.spec.name, res)
        writer = None
        if res == reference_resolution(cfg.eval):
            writer = ReconWriter(out_dir / "recon", res, model.spec.bpp(res, res))
        r = evaluate_resolution(model, photos, res, cfg, device, writer, nets)
        if writer is not None:
            writer.write()
        write_json(out_dir / f"eval_{res}.json", r)
        results.append(r)
    native = native_results(model, cfg, manifest, data_source, device, nets)
    write_json(out_dir / "eval_native.json", native)
    return results


def native_results(
    model: Tokenizer, cfg: TokenizerConfig, manifest: str | Path, data_source: str,
    device: torch.device, nets: FrechetNets | None = None,
) -> dict:  # fmt: skip
    """``eval_native.json``: every image of ``eval.folder`` at its own size (see ``native.py``)."""
    precision = precision_for(device, cfg.precision, kind="conv")
    folder, count, photos = native_photos(cfg.eval["folder"], manifest, data_source)
    log.info("%s: native-resolution evaluation of %s", model.spec.name, folder)
    f = cfg.eval["frechet"]
    sampler = PatchSampler(f["patch"], f["max_samples"], count, f["seed"])
    r = evaluate_native(model, photos, cfg.eval, device, precision.autocast, sampler)
    return {
        "variant": model.spec.name,
        "resolution": "native",
        "folder": folder,
        "n_images": len(r["images"]),
        "psnr": float(np.mean([i["psnr"] for i in r["images"]])),
        "ssim": float(np.mean([i["ssim"] for i in r["images"]])),
        "bpp": float(np.mean([i["bpp"] for i in r["images"]])),
        "padding": "bottom/right edge replication to multiples of f, cut off after decoding",
        **r,
        **compute_record(precision),
        **frechet_or_not(nets, sampler, f),
    }


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
