"""Decode any image file a user may have into an 8-bit RGB array, or say why not.

Handles EXIF orientation, grayscale, RGBA / LA / palette with transparency (composited over
white), 16-bit and float images, CMYK, and truncated or non-image files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")


class BadImage(ValueError):
    """A file that cannot be used as an RGB photo; ``reason`` goes into rejected.csv."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _high_bit_depth_to_uint8(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    else:
        # 16-bit (I;16*) or 32-bit integer (I): use the type's range when values fit 16 bits.
        hi = 65535.0 if arr.max() <= 65535 else float(arr.max())
        scaled = arr.astype(np.float64) / hi
    return np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 from a PIL image of any mode, upright per its EXIF orientation."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        gray = _high_bit_depth_to_uint8(img)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    arr = np.asarray(img.convert("RGB"))
    if arr.dtype != np.uint8:  # e.g. 48-bit RGB from some TIFFs
        arr = _high_bit_depth_to_uint8(Image.fromarray(arr))
    return np.ascontiguousarray(arr)


def decode_image(path: str | Path) -> np.ndarray:
    """Read ``path`` fully (so truncation is caught here) and return (H, W, 3) uint8.

    Raises:
        BadImage: with a short reason (not an image, truncated, empty, ...).
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadImage(path, "empty file")
        with Image.open(path) as img:
            img.load()
            return to_rgb_array(img)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage(path, "not an image (format not recognised)") from None
    except (OSError, SyntaxError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BadImage(path, f"unreadable image ({reason})") from None
