"""make_fields: deterministic synthetic 2-D fields in six families, values in [0, 1].

Every field is drawn from its own seeded stream (seed, split, family, index), so changing the
number of fields per family never changes the fields that already existed. Each field is
min-max normalised to [0, 1] before noise; noise is added and the result clipped to [0, 1].

Outputs under ``out`` (normally ``data/prepared/fields``): ``{split}.npz`` with ``fields``
(N, S, S) float32, ``family`` (N,) int16 (index into ``families``), ``noise`` (N,) float32, and
``index.json`` (size, families, counts, noise levels, seed, sha256 per file).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from reconlab.config import FieldsConfig
from reconlab.io import atomic_dir, read_json, sha256_file, write_json

SPLITS = ("train", "val", "test")
_SPLIT_SEED = {"train": 0, "val": 1, "test": 2}
TAU = 2 * np.pi

Grid = tuple[np.ndarray, np.ndarray]


def _grid(size: int) -> Grid:
    c = (np.arange(size) + 0.5) / size
    return np.meshgrid(c, c, indexing="ij")  # (y, x) in (0, 1)


def _wave(y, x, rng, fmin=1.0, fmax=4.0):
    freq = rng.uniform(fmin, fmax)
    theta = rng.uniform(0, np.pi)
    phase = rng.uniform(0, TAU)
    return np.sin(TAU * freq * (np.cos(theta) * x + np.sin(theta) * y) + phase)


def sinusoid(y, x, rng):
    """One plane wave, 1-4 cycles across the field, random direction and phase."""
    return _wave(y, x, rng)


def multi_frequency(y, x, rng):
    """2-4 plane waves of different frequencies and decaying amplitudes."""
    k = rng.integers(2, 5)
    return sum(rng.uniform(0.3, 1.0) / (i + 1) * _wave(y, x, rng, 1, 6) for i in range(k))


def radial(y, x, rng):
    """A circular wave around a random centre."""
    cy, cx = rng.uniform(0.2, 0.8, 2)
    r = np.hypot(y - cy, x - cx)
    return np.sin(TAU * rng.uniform(1.5, 5) * r + rng.uniform(0, TAU))


def interference(y, x, rng):
    """Two circular waves from two point sources, same wavelength."""
    freq = rng.uniform(2, 5)
    total = 0
    for _ in range(2):
        cy, cx = rng.uniform(-0.2, 1.2, 2)
        total = total + np.sin(TAU * freq * np.hypot(y - cy, x - cx) + rng.uniform(0, TAU))
    return total


def modulated(y, x, rng):
    """AM/FM: a carrier whose amplitude and phase are modulated along the other axis."""
    theta = rng.uniform(0, np.pi)
    u = np.cos(theta) * x + np.sin(theta) * y
    v = -np.sin(theta) * x + np.cos(theta) * y
    am = 1 + rng.uniform(0.3, 0.9) * np.cos(TAU * rng.uniform(0.5, 2) * v)
    fm = rng.uniform(0.5, 2.0) * np.sin(TAU * rng.uniform(0.5, 2) * v)
    return am * np.sin(TAU * rng.uniform(2, 5) * u + fm)


def composite(y, x, rng):
    """A random weighted sum of two members of the other families."""
    picks = rng.choice(len(_BASIC), size=2, replace=False)
    return sum(rng.uniform(0.4, 1.0) * _BASIC[i](y, x, rng) for i in picks)


_BASIC: list[Callable] = [sinusoid, multi_frequency, radial, interference, modulated]
FAMILIES: dict[str, Callable] = {f.__name__: f for f in [*_BASIC, composite]}


def make_field(family: str, size: int, rng: np.random.Generator, noise: float = 0.0) -> np.ndarray:
    """One (size, size) float32 field of ``family`` in [0, 1]."""
    y, x = _grid(size)
    f = FAMILIES[family](y, x, rng)
    lo, hi = f.min(), f.max()
    f = (f - lo) / (hi - lo) if hi > lo else np.full_like(f, 0.5)
    if noise > 0:
        f = f + rng.normal(0, noise, f.shape)
    return np.clip(f, 0, 1).astype(np.float32)


def generate_split(cfg: FieldsConfig, split: str) -> dict[str, np.ndarray]:
    fields, family_ids, noises = [], [], []
    for fam_idx, family in enumerate(cfg.families):
        fam_seed = list(FAMILIES).index(family)  # stable when the families list is reordered
        for i in range(cfg.per_family[split]):
            rng = np.random.default_rng([cfg.seed, _SPLIT_SEED[split], fam_seed, i])
            noise = cfg.noise_levels[i % len(cfg.noise_levels)]
            fields.append(make_field(family, cfg.size, rng, noise))
            family_ids.append(fam_idx)
            noises.append(noise)
    return {
        "fields": np.stack(fields),
        "family": np.asarray(family_ids, dtype=np.int16),
        "noise": np.asarray(noises, dtype=np.float32),
    }


def make_fields(cfg: FieldsConfig, out: str | Path) -> dict:
    """Write every split and the index to ``out`` (atomically, as one folder); return the index."""
    out = Path(out)
    index = {
        "size": cfg.size,
        "families": list(cfg.families),
        "noise_levels": list(cfg.noise_levels),
        "seed": cfg.seed,
        "value_range": [0.0, 1.0],
        "splits": {},
    }
    with atomic_dir(out) as tmp:
        for split in SPLITS:
            arrays = generate_split(cfg, split)
            np.savez(tmp / f"{split}.npz", **arrays)
            index["splits"][split] = {
                "file": f"{split}.npz",
                "count": int(len(arrays["fields"])),
                "sha256": sha256_file(tmp / f"{split}.npz"),
            }
        write_json(tmp / "index.json", index)
    return index


def load_fields(folder: str | Path, split: str) -> dict[str, np.ndarray]:
    """Read one split, verifying its checksum against index.json."""
    folder = Path(folder)
    entry = read_json(folder / "index.json")["splits"][split]
    path = folder / entry["file"]
    if sha256_file(path) != entry["sha256"]:
        raise ValueError(
            f"{path}: checksum does not match {folder / 'index.json'}; rerun make_fields"
        )
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
