"""Decode any image file a user may have into an 8-bit RGB array, or say why not.

Handles EXIF orientation, grayscale, RGBA / LA / palette with transparency (composited over
white), 16-bit and float images, CMYK, embedded ICC colour profiles (converted to sRGB with
Pillow's ImageCms / LittleCMS, perceptual intent), and truncated or non-image files.

Any exception while decoding one file is that file's problem: :func:`decode_image` turns it
into :class:`BadImage` with a one-line reason (including Pillow's ``DecompressionBombError`` for
headers claiming more than twice ``Image.MAX_IMAGE_PIXELS`` pixels), never a traceback.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")


class BadImage(ValueError):
    """A file that cannot be used as an RGB photo; ``reason`` goes into rejected.csv."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


class Decoded(NamedTuple):
    """A decoded photo: ``rgb`` (H, W, 3) uint8 sRGB and ``colour``, how its colours were read
    (``""`` without a profile, else ``"icc:<profile description> -> sRGB"``)."""

    rgb: np.ndarray
    colour: str


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_srgb(img: Image.Image) -> tuple[Image.Image, str]:
    """Convert ``img`` from its embedded ICC profile to sRGB (RGB/CMYK/L modes); say what was done.

    Images without a profile are returned unchanged (they are taken as sRGB, as browsers do).
    A profile that does not fit the image's mode is not applied, and the note says so; one that
    LittleCMS cannot parse at all raises ``OSError`` (the file is then rejected as unreadable).
    """
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK", "L", "P"):
        return img, ""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    name = ImageCms.getProfileDescription(profile).strip() or "unnamed profile"
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    alpha = img.getchannel("A") if img.mode == "RGBA" else None
    src = img.convert("RGB") if alpha is not None else img
    try:
        converted = ImageCms.profileToProfile(src, profile, _SRGB, outputMode="RGB")
    except ImageCms.PyCMSError as e:  # e.g. an RGB profile on a grayscale image
        return img, f"icc:{name} not applied ({_first_line(e)})"
    if alpha is not None:
        converted.putalpha(alpha)
    return converted, f"icc:{name} -> sRGB"


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
    return _to_rgb(img)[0]


def _to_rgb(img: Image.Image) -> tuple[np.ndarray, str]:
    img = ImageOps.exif_transpose(img)
    img, colour = to_srgb(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        gray = _high_bit_depth_to_uint8(img)
        return np.repeat(gray[..., None], 3, axis=2), colour
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    arr = np.asarray(img.convert("RGB"))
    if arr.dtype != np.uint8:  # e.g. 48-bit RGB from some TIFFs
        arr = _high_bit_depth_to_uint8(Image.fromarray(arr))
    return np.ascontiguousarray(arr), colour


def decode_image(path: str | Path) -> np.ndarray:
    """Read ``path`` fully (so truncation is caught here) and return (H, W, 3) uint8 sRGB.

    Raises:
        BadImage: with a short reason (not an image, truncated, empty, too large, ...).
    """
    return decode(path).rgb


def decode(path: str | Path) -> Decoded:
    """:func:`decode_image` plus how the colours were read (see :class:`Decoded`).

    Raises:
        BadImage: for *any* exception raised while reading or converting the file, with a
            one-line reason naming the exception type (``KeyboardInterrupt`` and ``SystemExit``
            are not caught).
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadImage(path, "empty file")
        with Image.open(path) as img:
            img.load()
            return Decoded(*_to_rgb(img))
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage(path, "not an image (format not recognised)") from None
    except Image.DecompressionBombError as e:
        raise BadImage(path, f"too large to decode safely ({_first_line(e)})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImage(path, f"unreadable image ({_first_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure is this file's problem
        raise BadImage(path, f"unreadable image ({type(e).__name__}: {_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
