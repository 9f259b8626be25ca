"""prepare_images: source photos -> deduplicated, split-by-photo, seeded crops + manifest.

Outputs under ``out`` (normally ``data/prepared``):

* ``images/{split}/{name}_{k}.png`` — RGB crops of ``crop_size`` pixels,
* ``manifest.csv`` — file, source, split, sha256, width, height, colour (one row per crop;
  ``colour`` says how an embedded ICC profile was converted to sRGB, empty without one),
* ``rejected.csv`` — file, reason (unreadable files, duplicates, images too small).

Crops of one source photo never land in two splits: splits are drawn over source photos.

Reliability: any exception while reading one file rejects that file with its reason (or stops
with one line naming it under ``on_bad_image: fail``). Every name the file system allows works
— non-UTF-8 bytes, spaces, newlines, leading dashes, 255-byte names — and is written to the CSVs
losslessly (:func:`reconlab.io.name_text`). The three outputs are built in a staging folder and
replace the old ones together (:func:`reconlab.io.staged_outputs`), so a failed or killed run
never leaves a new ``images/`` beside an old ``manifest.csv``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from reconlab.config import DataConfig, ParamsError
from reconlab.data.decode import IMAGE_SUFFIXES, BadImage, decode
from reconlab.io import name_text, sha256_file, staged_outputs, write_csv

log = logging.getLogger(__name__)

# The colour photographs shipped inside scikit-image's wheel (no download needed).
# motorcycle_right is left out: it is the other half of a stereo pair of motorcycle_left.
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "ihc",
    "motorcycle_left",
    "retina",
    "rocket",
)
SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ("file", "source", "split", "sha256", "width", "height", "colour")
OUTPUTS = ("images", "rejected.csv", "manifest.csv")  # manifest last: the commit marker
_SLUG_CHARS = 80  # crop names stay far below the 255-byte name limit
REJECTED_COLUMNS = ("file", "reason")


@dataclass(frozen=True)
class SourceFile:
    label: str  # "skimage:astronaut" or the path relative to the user's folder (name_text)
    path: Path


@dataclass(frozen=True)
class PrepareSummary:
    crops: dict[str, int]
    sources: dict[str, int]
    rejected: int


def list_sources(source: str) -> list[SourceFile]:
    """The candidate image files of ``data.source``, sorted by label."""
    if source == "skimage":
        import skimage.data

        data_dir = Path(skimage.data.__file__).parent
        found = []
        for name in SKIMAGE_PHOTOS:
            matches = sorted(p for p in data_dir.glob(f"{name}.*") if p.suffix in IMAGE_SUFFIXES)
            if matches:
                found.append(SourceFile(f"skimage:{name}", matches[0]))
        if not found:
            raise FileNotFoundError(f"data.source: no bundled photos found in {data_dir}")
        return found
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"data.source: {folder} is not a folder (or use 'skimage')")
    # Symlinks that lead nowhere (dangling, loops) are kept: reading them rejects them by name.
    files = sorted(
        p
        for p in folder.rglob("*")
        if (p.is_file() or (p.is_symlink() and not p.is_dir()))
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise ValueError(
            f"data.source: {folder} contains no images "
            f"({', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)}, searched recursively)"
        )
    return sorted(
        (SourceFile(name_text(p.relative_to(folder).as_posix()), p) for p in files),
        key=lambda s: s.label,
    )


def assign_splits(keys: list[str], ratios: dict[str, float], seed: int) -> dict[str, str]:
    """Seeded assignment of source keys to splits with counts proportional to ``ratios``.

    Largest-remainder rounding; every split with a positive ratio gets at least one source when
    there are enough sources. The result depends only on the set of keys, the ratios and the seed.
    """
    total = sum(ratios[s] for s in SPLITS)
    if total <= 0:
        raise ParamsError("params: data.splits: at least one ratio must be positive")
    n = len(keys)
    exact = {s: ratios[s] / total * n for s in SPLITS}
    counts = {s: int(exact[s]) for s in SPLITS}
    by_remainder = sorted(SPLITS, key=lambda s: (-(exact[s] - counts[s]), SPLITS.index(s)))
    for s in by_remainder[: n - sum(counts.values())]:
        counts[s] += 1
    wanted = [s for s in SPLITS if ratios[s] > 0]
    if n >= len(wanted):  # borrow from the largest split so no requested split is empty
        for s in wanted:
            if counts[s] == 0:
                donor = max(SPLITS, key=lambda d: counts[d])
                counts[donor] -= 1
                counts[s] += 1
    order = np.random.default_rng(seed).permutation(n)
    ordered = [sorted(keys)[i] for i in order]
    assignment, start = {}, 0
    for s in SPLITS:
        for key in ordered[start : start + counts[s]]:
            assignment[key] = s
        start += counts[s]
    return assignment


def _resize_shorter(rgb: np.ndarray, shorter: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = shorter / min(h, w)
    size = (max(shorter, round(w * scale)), max(shorter, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def random_crops(rgb: np.ndarray, size: int, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` seeded square crops of ``size`` (the image must be at least that large)."""
    h, w = rgb.shape[:2]
    tops = rng.integers(0, h - size + 1, n)
    lefts = rng.integers(0, w - size + 1, n)
    return [rgb[t : t + size, x : x + size] for t, x in zip(tops, lefts, strict=True)]


def _slug(label: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", label.removeprefix("skimage:")).strip("_")
    return slug[:_SLUG_CHARS] or "image"


def prepare_images(cfg: DataConfig, out: str | Path) -> PrepareSummary:
    """Decode, deduplicate, split by photo, resize, crop and write ``cfg``'s dataset to ``out``."""
    out = Path(out)
    if cfg.resize_shorter is not None and cfg.resize_shorter < cfg.crop_size:
        raise ParamsError(
            f"params: data.resize_shorter ({cfg.resize_shorter}) must be >= data.crop_size "
            f"({cfg.crop_size}), or null to keep native sizes"
        )
    sources = list_sources(cfg.source)
    rejected: list[dict] = []
    usable: dict[str, tuple[SourceFile, np.ndarray, str]] = {}  # sha256 -> (source, rgb, colour)
    first_of: dict[str, str] = {}

    def reject(label: str, reason: str) -> None:
        if cfg.on_bad_image == "fail":
            raise ValueError(f"data: {label}: {reason} (set data.on_bad_image: skip to list it)")
        log.warning("rejected %s: %s", label, reason)
        rejected.append({"file": label, "reason": reason})

    for src in tqdm(sources, desc="decode", unit="img"):
        try:
            digest = sha256_file(src.path)
        except OSError as e:  # unreadable, dangling symlink, symlink loop, ...
            reject(src.label, f"unreadable file ({e.strerror or type(e).__name__})")
            continue
        if digest in first_of:
            reject(src.label, f"duplicate of {first_of[digest]}")
            continue
        first_of[digest] = src.label
        try:
            rgb, colour = decode(src.path)
        except BadImage as e:
            reject(src.label, e.reason)
            continue
        if colour:
            log.info("%s: %s", src.label, colour)
        h, w = rgb.shape[:2]
        if cfg.resize_shorter is not None:
            rgb = _resize_shorter(rgb, cfg.resize_shorter)
        elif min(h, w) < cfg.crop_size:
            if cfg.small_images == "reject":
                reject(src.label, f"smaller than the crop ({w}x{h} < {cfg.crop_size})")
                continue
            rgb = _resize_shorter(rgb, cfg.crop_size)
        usable[digest] = (src, rgb, colour)

    if not usable:
        raise ValueError(
            f"data.source: none of the {len(sources)} files in {cfg.source} is usable "
            f"(first rejected: {rejected[0]['file']}: {rejected[0]['reason']})"
        )
    split_of = assign_splits(list(usable), dict(cfg.splits), cfg.seed)
    rows: list[dict] = []
    with staged_outputs(out, OUTPUTS) as stage:
        for s in SPLITS:
            (stage / "images" / s).mkdir(parents=True)
        for digest in tqdm(sorted(usable), desc="crop", unit="img"):
            src, rgb, colour = usable[digest]
            split = split_of[digest]
            # Per-photo seed: adding a photo never changes the crops of the others.
            rng = np.random.default_rng([cfg.seed, int(digest[:12], 16)])
            for k, crop in enumerate(random_crops(rgb, cfg.crop_size, cfg.crops_per_image, rng)):
                name = f"{_slug(src.label)}_{digest[:8]}_{k:03d}.png"
                path = stage / "images" / split / name
                Image.fromarray(crop).save(path, compress_level=1)
                rows.append(
                    {
                        "file": f"images/{split}/{name}",
                        "source": src.label,
                        "split": split,
                        "sha256": sha256_file(path),
                        "width": crop.shape[1],
                        "height": crop.shape[0],
                        "colour": colour,
                    }
                )
        rows.sort(key=lambda r: r["file"])
        write_csv(stage / "rejected.csv", rejected, REJECTED_COLUMNS)
        write_csv(stage / "manifest.csv", rows, MANIFEST_COLUMNS)
    crops = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    n_sources = {s: sum(v == s for v in split_of.values()) for s in SPLITS}
    return PrepareSummary(crops=crops, sources=n_sources, rejected=len(rejected))


def verify_prepared(prepared: str | Path, files: list[str] | None = None) -> None:
    """Check prepared crops against the sha256 in ``prepared/manifest.csv`` before they are used.

    Args:
        prepared: the prepare_images output folder.
        files: manifest ``file`` entries to check (default: every row).

    Raises:
        FileNotFoundError: no manifest, or a listed crop is missing (naming it).
        ValueError: a crop's bytes differ from the manifest (flipped bytes, truncation), naming
            the file; nothing computed from it is trusted, so rerun prepare-images.
    """
    from reconlab.io import read_csv

    prepared = Path(prepared)
    manifest = prepared / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no manifest (run prepare-images first)")
    digests = {r["file"]: r["sha256"] for r in read_csv(manifest)}
    for name in digests if files is None else files:
        path = prepared / name
        if name not in digests:
            raise ValueError(f"{path}: not listed in {manifest}; rerun prepare-images")
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: listed in {manifest} but missing; rerun prepare-images"
            )
        if sha256_file(path) != digests[name]:
            raise ValueError(
                f"{path}: corrupt prepared image (sha256 differs from {manifest}); "
                "rerun prepare-images (snakemake -R prepare_images)"
            )
