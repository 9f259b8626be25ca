"""The JPEG baseline: Pillow JPEG at a range of qualities -> bits per pixel, PSNR, SSIM.

bpp counts the whole file (headers and tables included), as a user storing the file would pay;
at small sizes the ~0.6 kB header is a visible part of the lowest-quality files.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

# torch and torchmetrics (about 4 s of imports per process) load inside the functions that
# compute: `reconlab tokenizer-summarize` only reads JPEG rows and must stay light.


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """Encode an (H, W, 3) uint8 image at ``quality`` (1..95) and decode it; return (pixels, bytes)."""
    if not 1 <= quality <= 95:
        raise ValueError(f"tokenizer.jpeg.qualities: {quality} is outside 1..95")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, optimize=True)
    size = buf.tell()
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB")), size


def to_tensor(rgbs: list[np.ndarray]) -> torch.Tensor:
    """(H, W, 3) uint8 images of one size -> (B, 3, H, W) float in [0, 1]."""
    import torch

    return torch.from_numpy(np.stack(rgbs)).permute(0, 3, 1, 2).float() / 255


def jpeg_curve(images: list[np.ndarray], qualities: list[int]) -> list[dict]:
    """One row per quality: mean bpp, PSNR and SSIM over ``images`` (all one size)."""
    from reconlab.evaluation.image_metrics import count_capped, per_image_metrics

    target = to_tensor(images)
    pixels = images[0].shape[0] * images[0].shape[1]
    rows = []
    for q in sorted(qualities):
        decoded, sizes = zip(*(jpeg_roundtrip(im, q) for im in images), strict=True)
        m = per_image_metrics(to_tensor(list(decoded)), target)
        rows.append(
            {
                "quality": q,
                "bpp": float(np.mean(sizes)) * 8 / pixels,
                "psnr": float(m["psnr"].mean()),
                "psnr_capped": count_capped(m["psnr"]),  # exact images count as PSNR_MAX_DB
                "ssim": float(m["ssim"].mean()),
            }
        )
    return rows


def jpeg_psnr_at(rows: list[dict], bpp: float) -> float | None:
    """JPEG PSNR at ``bpp`` by interpolation in log-bpp; None outside the curve's bpp range."""
    pts = sorted((r["bpp"], r["psnr"]) for r in rows)
    b = np.log([p[0] for p in pts])
    if not pts or bpp < pts[0][0] or bpp > pts[-1][0]:
        return None
    return float(np.interp(np.log(bpp), b, [p[1] for p in pts]))


def compare_to_jpeg(rows: list[dict], bpp: float, psnr: float) -> dict:
    """Where a tokenizer point (bpp, psnr) sits relative to the JPEG curve of the same images."""
    at = jpeg_psnr_at(rows, bpp)
    if at is not None:
        return {
            "jpeg_psnr_at_bpp": at,
            "delta_db": psnr - at,
            "beats_jpeg": bool(psnr > at),
            "note": "interpolated at equal bpp",
        }
    lowest = min(rows, key=lambda r: r["bpp"])
    highest = max(rows, key=lambda r: r["bpp"])
    if bpp < lowest["bpp"]:
        # JPEG cannot go this low: the tokenizer wins outright if it beats JPEG's smallest file.
        beats = psnr > lowest["psnr"]
        note = (
            f"below JPEG's lowest rate ({lowest['bpp']:.3f} bpp at q={lowest['quality']}, "
            f"{lowest['psnr']:.2f} dB); {'fewer bits and higher PSNR' if beats else 'not comparable at equal bpp'}"
        )
        return {
            "jpeg_psnr_at_bpp": None,
            "delta_db": psnr - lowest["psnr"],
            "beats_jpeg": beats,
            "note": note,
        }
    return {
        "jpeg_psnr_at_bpp": None,
        "delta_db": psnr - highest["psnr"],
        "beats_jpeg": False,
        "note": f"above JPEG's highest rate ({highest['bpp']:.3f} bpp at q={highest['quality']})",
    }
