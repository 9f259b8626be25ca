"""Per-image files for the report's comparison viewer: tokenizer reconstructions and JPEG files.

At the reference resolution only (small PNGs, a few test photos):

* ``<variant>/recon/<image>.png`` + ``index.json``: ``{"resolution", "images": [{"image",
  "file", "psnr", "bpp"}]}`` — what :func:`evaluate_resolution` reconstructed;
* ``jpeg/images/<image>/target.png``, ``q<quality>.jpg`` (the JPEG file itself, whole-file bpp)
  + ``index.json``: ``{"resolution", "images": [{"image", "target", "jpeg": [{"quality",
  "file", "bpp", "psnr"}]}]}``.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reconlab.evaluation.image_metrics import per_image_metrics
from reconlab.io import atomic_dir, write_json
from reconlab.tokenizer.jpeg import to_tensor


def file_stem(label: str) -> str:
    """A photo label (``skimage:astronaut``) as a safe file name (``skimage_astronaut``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "image"


def reference_resolution(eval_cfg: dict) -> int:
    """``eval.reference_resolution`` when it is evaluated, else the smallest resolution."""
    ref = eval_cfg["reference_resolution"]
    return ref if ref in eval_cfg["resolutions"] else sorted(eval_cfg["resolutions"])[0]


def to_uint8(recon: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8 (clamped, rounded)."""
    return (recon[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


class ReconWriter:
    """Collects one variant's reconstructions; :meth:`write` saves them as one folder, atomically."""

    def __init__(self, folder: Path, resolution: int, bpp: float) -> None:
        self.folder, self.resolution, self.bpp = Path(folder), resolution, bpp
        self.images: list[tuple[str, np.ndarray, float]] = []

    def add(self, label: str, recon: torch.Tensor, psnr: float) -> None:
        self.images.append((label, to_uint8(recon), float(psnr)))

    def write(self) -> None:
        rows = []
        with atomic_dir(self.folder) as tmp:
            for label, rgb, psnr in self.images:
                name = f"{file_stem(label)}.png"
                Image.fromarray(rgb).save(tmp / name, format="PNG", optimize=True)
                rows.append({"image": label, "file": name, "psnr": round(psnr, 4),
                             "bpp": round(self.bpp, 5)})  # fmt: skip
            write_json(tmp / "index.json", {"resolution": self.resolution, "images": rows})


def write_jpeg_images(
    photos: list[tuple[str, np.ndarray]], qualities: list[int], resolution: int, folder: Path
) -> dict:
    """Target PNG and one JPEG file per quality for every photo (already ``resolution`` px)."""
    entries = []
    with atomic_dir(Path(folder)) as tmp:
        for label, rgb in photos:
            stem = file_stem(label)
            (tmp / stem).mkdir()
            Image.fromarray(rgb).save(tmp / stem / "target.png", format="PNG", optimize=True)
            target = to_tensor([rgb])
            jpegs = []
            for q in sorted(qualities):
                buf = io.BytesIO()
                Image.fromarray(rgb).save(buf, format="JPEG", quality=q, optimize=True)
                data = buf.getvalue()
                (tmp / stem / f"q{q}.jpg").write_bytes(data)
                decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                psnr = float(per_image_metrics(to_tensor([decoded]), target)["psnr"][0])
                jpegs.append({"quality": q, "file": f"{stem}/q{q}.jpg",
                              "bpp": round(len(data) * 8 / (rgb.shape[0] * rgb.shape[1]), 5),
                              "psnr": round(psnr, 4)})  # fmt: skip
            entries.append({"image": label, "target": f"{stem}/target.png", "jpeg": jpegs})
        index = {"resolution": resolution, "images": entries}
        write_json(tmp / "index.json", index)
    return index
