"""The two diagnostics runs: one backbone (:func:`diagnose_backbone`) and one pair side by side
(:func:`compare_backbones`), plus the small metrics file DVC diffs (:func:`summarize`).

Each run reads feature caches (never a model), computes with :mod:`.pca`, :mod:`.smoothness`,
:mod:`.reference` and :mod:`.retrieval`, and writes JSON and figures atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reconlab.config import DiagnosticsConfig
from reconlab.diagnostics import figures
from reconlab.diagnostics.grid import RESAMPLE_METHOD, common_grid, resample_grid
from reconlab.diagnostics.inputs import (
    load_images,
    open_split,
    patch_tensor,
    pool_splits,
    source_labels,
)
from reconlab.diagnostics.pca import pca_maps
from reconlab.diagnostics.reference import reference_cell, reference_maps
from reconlab.diagnostics.retrieval import (
    background_directions,
    remove_directions,
    retrieval_metrics,
)
from reconlab.diagnostics.smoothness import neighbour_similarity
from reconlab.features.cache import FeatureCache, FeatureSplit
from reconlab.io import atomic_path, null_non_finite, write_csv, write_json


def first_images(split: FeatureSplit, n: int, tensor: str = "patch") -> torch.Tensor:
    """(min(n, N), h, w, D) float32 patch grids of the first images, reading only needed shards."""
    parts, have = [], 0
    for shard in split.shard_tensors(tensor):
        if have >= n:
            break
        take = shard[: n - have].float()
        parts.append(take)
        have += take.shape[0]
    if not parts:
        raise ValueError(f"diagnostics.split: split {split.name!r} of {split.root} has no images")
    return torch.cat(parts)


def write_maps(path: Path, maps: dict[str, torch.Tensor]) -> None:
    """The figure images' maps (N, h, w[, 3]) as safetensors, atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in maps.items()}, str(tmp))


def split_smoothness(split: FeatureSplit, grid: Sequence[int] | None = None, tensor: str = "patch"):
    """Per-patch (flat) and per-image neighbour similarity over a split, shard by shard."""
    per_patch, per_image = [], []
    for shard in split.shard_tensors(tensor):
        x = shard.float() if grid is None else resample_grid(shard, grid)
        sim = neighbour_similarity(x)
        per_patch.append(sim.flatten())
        per_image.append(sim.flatten(1).mean(1))
    return torch.cat(per_patch), torch.cat(per_image)


def describe(cache: FeatureCache) -> str:
    i = cache.index
    (height, width), (h, w) = i["image_size"], i["grid"]
    return (
        f"{i['backbone_id']} ({i['model']}), weights {cache.weights_id}: {height}x{width} px "
        f"input, patch {i['patch_size']} px, grid {h}x{w}"
    )


def retrieval_block(cache: FeatureCache, manifest: Path, cfg: DiagnosticsConfig) -> dict:
    """Retrieval metrics (flat keys) for CLS and mean-pooled embeddings, before/after removal."""
    pooled = pool_splits(cache, cfg.retrieval_splits, patch_tensor(cache, cfg.layer))
    labels = source_labels(manifest, pooled.files)
    out: dict[str, Any] = {
        "retrieval_items": len(labels),
        "retrieval_sources": len(set(labels)),
        "retrieval_splits": list(cfg.retrieval_splits),
        "remove_directions": cfg.remove_directions,
    }
    directions = None
    if cfg.remove_directions and pooled.patches.shape[0] >= 2:
        directions = background_directions(pooled.patches, cfg.remove_directions)
    for kind, emb in (("cls", pooled.cls), ("mean", pooled.mean)):
        r = retrieval_metrics(emb, labels, ks=cfg.recall_at)
        out["retrieval_queries"] = r.queries
        for k, v in r.recall.items():
            out[f"retrieval_recall_at_{k}_{kind}"] = null_non_finite(v)
        out[f"retrieval_map_{kind}"] = null_non_finite(r.mean_average_precision)
        if directions is not None:
            rr = retrieval_metrics(remove_directions(emb, directions), labels, ks=cfg.recall_at)
            for k, v in rr.recall.items():
                out[f"retrieval_recall_at_{k}_{kind}_removed"] = null_non_finite(v)
            out[f"retrieval_map_{kind}_removed"] = null_non_finite(rr.mean_average_precision)
            before, after = r.mean_average_precision, rr.mean_average_precision
            out[f"retrieval_map_{kind}_change"] = null_non_finite(after - before)
    return out


def check_reference_image(cfg: DiagnosticsConfig, n: int) -> int:
    if cfg.reference_image >= n:
        raise ValueError(
            f"diagnostics.reference_image: {cfg.reference_image} but the figure has {n} image(s)"
        )
    return cfg.reference_image


def diagnose_backbone(
    cache_dir: Path, prepared: Path, cfg: DiagnosticsConfig, out_dir: Path
) -> dict[str, Any]:
    """All diagnostics of one cached backbone; writes ``out_dir/{metrics.json, per_image.csv,
    maps.safetensors, maps.png, smoothness.png}`` and returns the metrics.

    ``maps.safetensors`` holds the maps of the figure images (rows of ``figure_images``):
    ``pca_rgb`` and ``foreground_rgb`` (N, h, w, 3) in [0, 1], ``foreground`` (N, h, w) 0/1,
    ``reference`` (N, h, w) cosine to the reference patch, ``smoothness`` (N, h, w) per patch.
    """
    cache = FeatureCache.open(Path(cache_dir))
    split = open_split(cache, cfg.split)
    grid_hw = cache.index["grid"]
    tensor = patch_tensor(cache, cfg.layer)

    per_patch, per_image = split_smoothness(split, tensor=tensor)
    fig_grid = first_images(split, cfg.images, tensor)
    n = fig_grid.shape[0]
    ref_image = check_reference_image(cfg, n)
    maps = pca_maps(fig_grid, cfg.foreground_threshold)
    cell = reference_cell(grid_hw, cfg.reference_point)
    ref = reference_maps(fig_grid, ref_image, cell)
    not_itself = torch.ones(*grid_hw, dtype=torch.bool)
    not_itself[cell] = False
    same = ref[ref_image][not_itself]
    others = torch.cat([ref[:ref_image], ref[ref_image + 1 :]]).flatten()

    metrics: dict[str, Any] = {
        **cache.provenance(),
        "stage": "diagnostics",
        "split": cfg.split,
        "tensor": tensor,
        "images": len(split),
        "smoothness_mean": null_non_finite(per_image.mean()),
        "smoothness_std": null_non_finite(per_image.std()) if len(per_image) > 1 else None,
        "smoothness_patch_mean": null_non_finite(per_patch[torch.isfinite(per_patch)].mean()),
        "pca_explained_variance_ratio": [
            null_non_finite(v) for v in maps.basis.explained_variance_ratio
        ],
        "foreground_fraction": null_non_finite(maps.foreground.float().mean()),
        "figure_images": split.files[:n],
        "reference_point": list(cfg.reference_point),
        "reference_cell": list(cell),
        "reference_image": split.files[ref_image],
        "reference_same_image_mean": null_non_finite(same.mean()) if same.numel() else None,
        "reference_other_images_mean": null_non_finite(others.mean()) if others.numel() else None,
        **retrieval_block(cache, Path(prepared) / "manifest.csv", cfg),
    }
    out_dir = Path(out_dir)
    labels = source_labels(Path(prepared) / "manifest.csv", split.files)
    rows = [
        {"file": f, "source": s, "smoothness": f"{float(v):.6f}"}
        for f, s, v in zip(split.files, labels, per_image, strict=True)
    ]
    write_csv(out_dir / "per_image.csv", rows, ["file", "source", "smoothness"])
    write_maps(
        out_dir / "maps.safetensors",
        {
            "pca_rgb": maps.rgb,
            "foreground": maps.foreground.to(torch.uint8),
            "foreground_rgb": maps.foreground_rgb,
            "reference": ref,
            "smoothness": neighbour_similarity(fig_grid),
        },
    )
    images = load_images(prepared, split.files[:n], cache.index["image_size"])
    header = describe(cache)
    figures.plot_backbone_maps(
        out_dir / "maps.png",
        images,
        maps.rgb,
        maps.foreground,
        maps.foreground_rgb,
        ref,
        ref_image,
        cell,
        f"{header}; {tensor}; split {cfg.split}; "
        f"reference patch {tuple(cell)} at {cfg.reference_point}",
        cache.weights_id,
    )
    figures.plot_smoothness(
        out_dir / "smoothness.png",
        per_patch,
        per_image,
        f"{header}\n{tensor}, split {cfg.split}: {len(split)} images",
        cache.weights_id,
    )
    # where and how it ran: fp32 on the CPU, always (cached tokens, no model; no precision param)
    from reconlab.runtime import compute_record, precision_for

    metrics.update(compute_record(precision_for(torch.device("cpu"), "fp32")))
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def compare_backbones(
    cache_dirs: Sequence[Path],
    prepared: Path,
    cfg: DiagnosticsConfig,
    figure: Path,
    out_json: Path,
) -> dict[str, Any]:
    """Side-by-side maps of two backbones at an equal patch grid; writes ``figure`` and ``out_json``.

    The grid is ``cfg.compare_grid`` or the smaller of the two native grids; a backbone whose
    cached grid differs is resampled (:data:`RESAMPLE_METHOD`), and the figure states it, with
    each backbone's input size and patch size in pixels.
    """
    caches = [FeatureCache.open(Path(d)) for d in cache_dirs]
    if len(caches) != 2:
        raise ValueError(f"compare-backbones: two caches are needed, got {len(caches)}")
    splits = [open_split(c, cfg.split) for c in caches]
    if splits[0].files != splits[1].files:
        raise ValueError(
            f"{cache_dirs[0]} and {cache_dirs[1]}: split {cfg.split!r} lists different images; "
            "rerun cache-features for both on the same prepared data"
        )
    grid = common_grid(caches[0].index["grid"], caches[1].index["grid"], cfg.compare_grid)
    cell = reference_cell(grid, cfg.reference_point)
    names = [c.index["backbone_id"] for c in caches]
    pca, ref, lines, entries = [], [], [], {}
    n = None
    for cache, split, name in zip(caches, splits, names, strict=True):
        native = list(cache.index["grid"])
        tensor = patch_tensor(cache, cfg.layer)
        x = resample_grid(first_images(split, cfg.images, tensor), grid)
        n = x.shape[0]
        ref_image = check_reference_image(cfg, n)
        pca.append(pca_maps(x, cfg.foreground_threshold).rgb)
        ref.append(reference_maps(x, ref_image, cell))
        _, per_image = split_smoothness(split, grid, tensor)
        resampled = native != grid
        cell_px = [cache.index["image_size"][k] / grid[k] for k in (0, 1)]
        note = f" -> resampled to {grid[0]}x{grid[1]} ({RESAMPLE_METHOD})" if resampled else ""
        lines.append(
            f"{describe(cache)}, {tensor}{note}; one cell = {cell_px[0]:.3g}x{cell_px[1]:.3g} px"
        )
        entries[name] = {
            **cache.provenance(),
            "tensor": tensor,
            "resampled": resampled,
            "cell_pixels": cell_px,
            "smoothness_mean_equal_grid": null_non_finite(per_image.mean()),
        }
    if any(e["resampled"] for e in entries.values()):
        lines.append(
            "resampling averages neighbouring patches: compare smoothness at native equal grids "
            "(e.g. DINOv3 at 256 px) rather than on resampled ones"
        )
    lines.append(
        f"compared at an equal {grid[0]}x{grid[1]} patch grid; reference patch {tuple(cell)} "
        f"at (y, x) = {tuple(cfg.reference_point)} of image {cfg.reference_image}; "
        f"split {cfg.split}"
    )
    images = load_images(prepared, splits[0].files[:n], caches[0].index["image_size"])
    weights = [c.weights_id for c in caches]
    figures.plot_comparison(
        figure, images, pca, ref, names, lines, cfg.reference_image, cell, weights
    )
    result = {
        "stage": "diagnostics",
        "backbones": names,
        "grid": grid,
        "resample_method": RESAMPLE_METHOD,
        "untrained": any(c.untrained for c in caches),
        "weights": weights,
        "split": cfg.split,
        "figure_images": splits[0].files[:n],
        "reference_cell": list(cell),
        "per_backbone": entries,
    }
    write_json(out_json, result)
    return result
