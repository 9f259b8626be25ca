"""Generated bad (and good) input files for the reliability tests: nothing copied from anyone."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def photo(seed: int, w: int = 120, h: int = 90) -> np.ndarray:
    """A seeded (h, w, 3) uint8 'photo' (smooth gradient plus noise, so crops differ)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], -1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def good_folder(root: Path, n: int = 6) -> Path:
    """``n`` good PNG photos in ``root`` (created)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(photo(i)).save(root / f"good{i}.png")
    return root


def png_claiming(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose header claims ``width x height`` RGB pixels (a 'decompression bomb')."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def wide_gamut_icc() -> bytes:
    """An ICC v2 matrix/TRC display profile with Adobe RGB (1998) primaries and gamma 563/256."""

    def xyz(v):
        return b"XYZ " + b"\0" * 4 + b"".join(_s15(c) for c in v)

    text = b"Wide gamut test profile (Adobe RGB 1998 primaries)\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 78
    curv = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 563) + b"\0\0"
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz((0.9642, 1.0, 0.8249))),
        (b"rXYZ", xyz((0.60974, 0.31111, 0.01947))),
        (b"gXYZ", xyz((0.20528, 0.62567, 0.06087))),
        (b"bXYZ", xyz((0.14919, 0.06322, 0.74457))),
        (b"rTRC", curv),
        (b"gTRC", curv),
        (b"bTRC", curv),
        (b"cprt", b"text" + b"\0" * 4 + b"none\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", offset + len(body))
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + b"\0" * 48
    )
    return header + struct.pack(">I", len(tags)) + table + body


def adobe_to_srgb(rgb: tuple[int, int, int]) -> np.ndarray:
    """Reference colour-managed value by formula (Adobe RGB -> XYZ D65 -> sRGB), 0..255 floats."""
    adobe = np.array([[0.5767309, 0.1855540, 0.1881852], [0.2973769, 0.6273491, 0.0752741],
                      [0.0270343, 0.0706872, 0.9911085]])  # fmt: skip
    to_srgb = np.array([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560],
                        [0.0556434, -0.2040259, 1.0572252]])  # fmt: skip
    lin = np.clip(to_srgb @ (adobe @ ((np.array(rgb) / 255) ** (563 / 256))), 0, 1)
    return 255 * np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def write_raw_name(folder: Path, raw_name: bytes, data: bytes) -> str:
    """Create ``folder/raw_name`` (bytes, may be invalid UTF-8); return the OS ``str`` name."""
    with open(os.fsencode(folder) + b"/" + raw_name, "wb") as f:
        f.write(data)
    return os.fsdecode(raw_name)


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``root`` (to assert outputs are untouched)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


SMALL_DATA = {"crop_size": 32, "crops_per_image": 1, "resize_shorter": 48}
BACKBONE = {
    "id": "vit",
    "model": "vit_small_patch14_dinov2.lvd142m",
    "weights": "random",
    "image_size": 28,
    "layers": [],
}
# fp32 pinned: ``precision: auto`` resolves by a timing probe, which a loaded machine can flip
# between runs (seen: bf16 in one run, fp32 in the next) — these tests compare runs bit for bit.
FEATURES = {
    "backbones": [BACKBONE],
    "batch_size": 4,
    "shard_size": 2,
    "device": "cpu",
    "precision": "fp32",
}


def make_feature_cache(root: Path) -> Path:
    """``root/prepared`` (4 photos) and ``root/cache``: a real timm ViT-S/14 (random weights)
    feature cache with 2-image shards, both made through the ``reconlab`` CLI."""
    import json

    from reconlab.cli import main

    src = good_folder(root / "photos", n=4)
    data = json.dumps({"source": str(src), **SMALL_DATA})
    assert main(["prepare-images", "--params", data, "--out", str(root / "prepared")]) == 0
    args = ["cache-features", "--params", json.dumps(FEATURES), "--backbone", "vit", "--quiet"]
    assert main([*args, "--prepared", str(root / "prepared"), "--out", str(root / "cache")]) == 0
    return root
