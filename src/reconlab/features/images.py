"""Images as a backbone sees them, and as a decoder's RGB target is built: one function for both.

Feature caching and every consumer of the cache (decoder targets, diagnostics overlays) load an
image through :func:`load_image_tensor`, so a cached patch token and the pixels it describes come
from exactly the same resize and crop.

Geometry: an image that already is ``H x W`` is used as is (the prepared crops normally are).
Otherwise it is resized, keeping its aspect ratio, so that it just covers ``H x W`` (bicubic with
antialiasing, PIL), then centre-cropped to ``H x W``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reconlab.data.decode import decode_image


def image_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``224`` or ``[224, 320]`` -> ``(H, W)``."""
    if isinstance(image_size, int):
        return image_size, image_size
    size = tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image_size must be an int or [H, W], got {list(image_size)!r}")
    return size  # type: ignore[return-value]


def fit_image(rgb: np.ndarray, image_size: int | Sequence[int]) -> np.ndarray:
    """(h, w, 3) uint8 -> (H, W, 3) uint8: resize to cover ``H x W`` keeping aspect, centre crop."""
    height, width = image_hw(image_size)
    h, w = rgb.shape[:2]
    if (h, w) == (height, width):
        return rgb
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    if (new_h, new_w) != (h, w):
        resized = Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.BICUBIC)
        rgb = np.asarray(resized)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(rgb[top : top + height, left : left + width])


def load_image_tensor(path: str | Path, image_size: int | Sequence[int]) -> torch.Tensor:
    """Float (3, H, W) in [0, 1]: the image at ``path`` resized and centre-cropped to ``image_size``.

    Args:
        path: any image file :func:`reconlab.data.decode.decode_image` reads.
        image_size: an int (square) or ``[H, W]``, e.g. ``cache.index["image_size"]``.

    Raises:
        reconlab.data.decode.BadImage: (a ValueError) naming the file when it cannot be read.
    """
    rgb = fit_image(decode_image(path), image_size)
    return torch.tensor(rgb).permute(2, 0, 1).float().div_(255.0)
