"""What the diagnostics read: a feature cache's splits, the images behind them, their labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from reconlab.features.cache import FeatureCache, FeatureSplit
from reconlab.io import read_csv

MAX_DIRECTION_PATCHES = 50_000  # patches sampled to fit the background directions (memory bound)


def source_labels(manifest: Path, files: Sequence[str]) -> list[str]:
    """The ``source`` column of ``manifest`` (data/prepared/manifest.csv) for each cached file.

    Raises:
        ValueError: naming the manifest when it lacks a column or one of ``files``.
    """
    rows = read_csv(manifest)
    if rows and not {"file", "source"} <= set(rows[0]):
        raise ValueError(f"{manifest}: columns 'file' and 'source' are required")
    by_file = {r["file"]: r["source"] for r in rows}
    missing = [f for f in files if f not in by_file]
    if missing:
        raise ValueError(
            f"{manifest}: no row for cached image {missing[0]!r} ({len(missing)} missing); "
            "the feature cache is older than the prepared data, rerun cache-features"
        )
    return [by_file[f] for f in files]


def load_images(prepared: Path, files: Sequence[str], image_size: Sequence[int]) -> torch.Tensor:
    """(N, 3, H, W) images in [0, 1], resized and cropped exactly as the backbone saw them."""
    from reconlab.features.images import load_image_tensor

    if not files:
        return torch.zeros(0, 3, *image_size)
    return torch.stack([load_image_tensor(Path(prepared) / f, image_size) for f in files])


class PooledSplits(NamedTuple):
    """The retrieval set: one row per image of the pooled splits."""

    files: list[str]
    cls: torch.Tensor  # (N, D) float32
    mean: torch.Tensor  # (N, D) float32, mean of the patch tokens
    patches: torch.Tensor  # (M, D) float32, an evenly strided sample of all patch tokens


def patch_tensor(cache: FeatureCache, layer: int | None) -> str:
    """The cached tensor the diagnostics read: ``patch`` (final layer) or ``patch_layer{k}``."""
    if layer is None:
        return "patch"
    if layer not in cache.index["layers"]:
        raise ValueError(
            f"diagnostics.layer: {cache.index_path} caches no layer {layer} "
            f"(cached: {cache.index['layers']}; set features.backbones[*].layers)"
        )
    return f"patch_layer{layer}"


def pool_splits(cache: FeatureCache, splits: Sequence[str], tensor: str = "patch") -> PooledSplits:
    """CLS, mean-pooled ``tensor`` tokens and a sample of them over ``splits``, shard by shard.

    Splits the cache does not have are ignored; memory stays bounded by one shard plus the
    :data:`MAX_DIRECTION_PATCHES` sample.
    """
    parts = [cache.split(s) for s in splits if s in cache.splits]
    total = sum(len(p) for p in parts) * int(math.prod(cache.index["grid"]))
    stride = max(1, math.ceil(total / MAX_DIRECTION_PATCHES))
    dim = int(cache.index["embed_dim"])
    files, cls, mean, sample = [], [], [], []
    for part in parts:
        files += part.files
        for shard in part.shard_tensors("cls"):
            cls.append(shard.float())
        for shard in part.shard_tensors(tensor):
            x = shard.float()
            mean.append(x.mean((1, 2)))
            sample.append(x.reshape(-1, dim)[::stride])
    empty = torch.zeros(0, dim)
    return PooledSplits(
        files,
        torch.cat(cls) if cls else empty,
        torch.cat(mean) if mean else empty,
        torch.cat(sample) if sample else empty,
    )


def open_split(cache: FeatureCache, name: str) -> FeatureSplit:
    """``cache.split(name)`` with an error that names the params key."""
    if name not in cache.splits:
        raise ValueError(
            f"diagnostics.split: {cache.index_path} has no split {name!r} (cached: {cache.splits})"
        )
    return cache.split(name)
