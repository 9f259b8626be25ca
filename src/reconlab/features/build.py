"""``cache_features``: prepared images -> one verified feature cache per backbone, resumable.

Shards are computed into a work folder beside the output (``.{id}.partial``; Snakemake deletes a
failed job's outputs, not this), each written atomically and recorded in ``progress.json`` with
the sha256 of the images it holds. A rerun after a kill reuses every shard that still matches
(same settings, same images, same bytes, same tensor shapes), recomputes the rest, and only then
swaps the finished folder into place. Peak memory is one shard plus one batch, whatever the split.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from reconlab.config import FeaturesConfig, from_section
from reconlab.data.images import verify_prepared
from reconlab.features.backbones import (
    Backbone,
    check_model_name,
    load_backbone,
    model_patch_size,
)
from reconlab.features.cache import (
    DTYPES,
    SPLITS,
    expected_shapes,
    shard_name,
    shard_problem,
    write_index,
    write_shard,
)
from reconlab.features.extract import FeatureExtractor, ImageDataset
from reconlab.features.params import backbone_ids
from reconlab.io import read_csv, read_json, sha256_bytes, swap_dir, write_json
from reconlab.runtime import compute_record, resolve_device, set_threads

log = logging.getLogger(__name__)
PROGRESS_NAME = "progress.json"


def backbone_image_size(entry: Mapping[str, Any], override: int | None) -> Any:
    """The entry's image_size, or ``override`` rounded down to a multiple of the patch size."""
    if override is None:
        return entry.get("image_size", 224)
    ph, pw = model_patch_size(entry["model"])
    return [max(ph, override // ph * ph), max(pw, override // pw * pw)]


def read_manifest(prepared: Path) -> dict[str, list[dict[str, str]]]:
    """Manifest rows per split, in manifest order (the row order of the cache)."""
    path = Path(prepared) / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest (run prepare-images first)")
    rows = read_csv(path)
    if rows and not {"file", "split"} <= set(rows[0]):
        raise ValueError(f"{path}: columns 'file' and 'split' are required")
    if rows and "sha256" in rows[0]:
        verify_prepared(prepared)  # a corrupt crop is named, never cached (issue 14)
    return {split: [r for r in rows if r["split"] == split] for split in SPLITS}


def prepare_backbone(
    cfg: FeaturesConfig, backbone_id: str, **model_kwargs: Any
) -> tuple[dict, Backbone]:
    """(params entry, loaded backbone) for ``backbone_id`` of the ``features`` section."""
    backbone_ids(dataclasses.asdict(cfg))  # unique ids
    i, entry = cfg.backbone(backbone_id)
    key = f"features.backbones[{i}]"
    check_model_name(entry["model"], f"{key}.model")
    size = backbone_image_size(entry, cfg.image_size)
    backbone = load_backbone(
        entry["model"],
        entry.get("weights", "pretrained"),
        size,
        layers=entry.get("layers", []),
        seed=cfg.seed,
        key=key,
        **model_kwargs,
    )
    return entry, backbone


def index_header(
    backbone_id: str, backbone: Backbone, cfg: FeaturesConfig, compute: dict[str, Any]
) -> dict[str, Any]:
    """Everything in index.json except ``splits``; also the fingerprint a resumed shard must match.

    ``compute`` is :func:`reconlab.runtime.compute_record` of the extractor: the resolved
    precision and the machine class are part of the fingerprint, so a cache computed in bf16 is
    not resumed in fp32.
    """
    ph, pw = backbone.patch_size
    return {
        "backbone_id": backbone_id,
        "model": backbone.name,
        "weights": backbone.weights,
        "weights_id": backbone.weights_id,
        "untrained": backbone.untrained,
        "dtype": cfg.dtype,
        **compute,
        "image_size": list(backbone.image_size),
        "patch_size": ph if ph == pw else [ph, pw],
        "grid": list(backbone.grid),
        "embed_dim": backbone.embed_dim,
        "num_prefix_tokens": backbone.num_prefix_tokens,
        "layers": list(backbone.layers),
        "shard_size": cfg.shard_size,
    }


def _inputs_hash(rows: list[dict[str, str]]) -> str:
    """What a shard was computed from: its image paths and their content hashes."""
    text = "\n".join(f"{r['file']}\t{r.get('sha256', '')}" for r in rows)
    return sha256_bytes(text.encode())


def _load_progress(work: Path, header: dict[str, Any]) -> dict[str, Any]:
    path = work / PROGRESS_NAME
    if path.is_file():
        try:
            progress = read_json(path)
        except ValueError:
            progress = {}
        if progress.get("header") == header:
            for stray in work.rglob(".*.tmp"):  # left by a write that was killed
                stray.unlink()
            return progress
        log.info("%s: settings changed, starting over", work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return {"header": header, "shards": {}}


def _feature_rows(
    extractor: FeatureExtractor, loader: DataLoader, dtype: torch.dtype, bar: Any
) -> Iterator[dict[str, torch.Tensor]]:
    """Per batch: {tensor name: (B, ...) on CPU in the cache dtype}; ``bar`` (tqdm) counts it."""
    for images in loader:
        f = extractor(images)
        rows = {"cls": f.cls, "patch": f.patch}
        rows.update({f"patch_layer{k}": t for k, t in f.layers.items()})
        bar.update(len(f.cls))
        yield {name: t.to("cpu", dtype) for name, t in rows.items()}


ShardPlan = dict[str, list[tuple[int, list[dict[str, str]], bool]]]


def plan_shards(
    splits: Mapping[str, list[dict[str, str]]],
    progress: Mapping[str, Any],
    work: Path,
    header: Mapping[str, Any],
    shard_size: int,
) -> ShardPlan:
    """Per split, ``(k, manifest rows, done)`` for every shard: ``done`` when ``progress`` holds
    it for the same images and its file in ``work`` still matches (bytes, shapes); a damaged
    one is logged and recomputed."""
    plan: ShardPlan = {}
    for split, rows in splits.items():
        plan[split] = []
        for k, start in enumerate(range(0, len(rows), shard_size)):
            chunk = rows[start : start + shard_size]
            done = progress["shards"].get(split, {}).get(shard_name(k))
            ok = bool(done) and done.get("inputs") == _inputs_hash(chunk)
            if ok:
                problem = shard_problem(work / split / shard_name(k), done, header)
                if problem:
                    log.warning("%s/%s/%s: %s; recomputing", work, split, shard_name(k), problem)
                ok = problem is None
            plan[split].append((k, chunk, ok))
    return plan


def fill_shards(
    stream: Iterator[dict[str, torch.Tensor]],
    pending: list[tuple[int, list[dict[str, str]]]],
    header: Mapping[str, Any],
    dtype: torch.dtype,
) -> Iterator[tuple[int, list[dict[str, str]], dict[str, torch.Tensor]]]:
    """Cut the batches of ``stream`` into the ``pending`` shards, in order: yields
    ``(k, rows, tensors)`` as each shard is full, its tensors shaped as ``header`` says
    (:func:`expected_shapes`). Whole batches run; their rows may straddle two shards, so peak
    memory is one shard plus one batch."""
    rest: dict[str, torch.Tensor] = {}  # rows of the last batch not yet in a shard
    for k, chunk in pending:
        n = len(chunk)
        buffers = {
            name: torch.empty(shape, dtype=dtype)
            for name, shape in expected_shapes(header, n).items()
        }
        filled = 0
        while filled < n:
            if not rest:
                rest = next(stream)
            take = min(n - filled, len(rest["cls"]))
            for name, buffer in buffers.items():
                buffer[filled : filled + take] = rest[name][:take]
            rest = {name: t[take:] for name, t in rest.items()} if take < len(rest["cls"]) else {}
            filled += take
        yield k, chunk, buffers


def finished_index(
    header: Mapping[str, Any],
    splits: Mapping[str, list[dict[str, str]]],
    plan: ShardPlan,
    progress: Mapping[str, Any],
) -> dict[str, Any]:
    """The cache's ``index.json``: ``header`` plus, per split, its files and shard entries."""
    index = dict(header)
    index["splits"] = {}
    for split, rows in splits.items():
        shard_entries = []
        for k, _, _ in plan[split]:
            e = progress["shards"][split][shard_name(k)]
            shard_entries.append({key: e[key] for key in ("file", "count", "sha256", "bytes")})
        index["splits"][split] = {
            "count": len(rows),
            "files": [r["file"] for r in rows],
            "shards": shard_entries,
        }
    return index


def cache_features(
    cfg: FeaturesConfig | Mapping[str, Any],
    backbone_id: str,
    prepared: Path,
    out: Path,
    progress_bar: bool = True,
    **model_kwargs: Any,
) -> dict[str, Any]:
    """Cache backbone ``backbone_id``'s tokens of every prepared split into ``out``; return the index.

    Args:
        cfg: the ``features`` params section (validated dict or :class:`FeaturesConfig`).
        backbone_id: one of ``features.backbones[*].id``.
        prepared: the prepare_images output folder (``manifest.csv`` and the images).
        out: the cache folder, e.g. ``data/features/dinov2_s14``.
        progress_bar: show a tqdm bar with images/s on stderr.
        model_kwargs: passed to ``timm.create_model`` (tests build 2-block models).
    """
    from tqdm import tqdm

    prepared, out = Path(prepared), Path(out)
    splits = read_manifest(prepared)
    if not isinstance(cfg, FeaturesConfig):
        cfg = from_section(FeaturesConfig, cfg)
    set_threads(cfg.threads)
    _, backbone = prepare_backbone(cfg, backbone_id, **model_kwargs)
    device = resolve_device(cfg.device)
    extractor = FeatureExtractor(backbone, device, cfg.precision, cfg.compile, cfg.batch_size)
    header = index_header(backbone_id, backbone, cfg, compute_record(extractor.precision))
    work = out.with_name(f".{out.name}.partial")
    progress = _load_progress(work, header)
    plan = plan_shards(splits, progress, work, header, cfg.shard_size)

    todo = sum(len(c) for p in plan.values() for _, c, ok in p if not ok)
    total = sum(len(rows) for rows in splits.values())
    bar = tqdm(
        total=total,
        initial=total - todo,
        unit="img",
        desc=backbone_id,
        disable=not progress_bar,
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()
    for split, shards in plan.items():
        pending = [(k, chunk) for k, chunk, ok in shards if not ok]
        if not pending:
            continue
        files = [prepared / r["file"] for _, chunk in pending for r in chunk]
        loader = DataLoader(
            ImageDataset(files, backbone.image_size),
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            pin_memory=device.type == "cuda",
        )
        stream = _feature_rows(extractor, loader, DTYPES[cfg.dtype], bar)
        for k, chunk, tensors in fill_shards(stream, pending, header, DTYPES[cfg.dtype]):
            done = write_shard(work / split / shard_name(k), tensors)
            done["inputs"] = _inputs_hash(chunk)
            progress["shards"].setdefault(split, {})[shard_name(k)] = done
            write_json(work / PROGRESS_NAME, progress)
    bar.close()
    seconds = time.perf_counter() - t0
    if todo:
        log.info("%s: %d images in %.1f s (%.1f img/s)", backbone_id, todo, seconds, todo / seconds)
    index = finished_index(header, splits, plan, progress)
    write_index(work, index)
    (work / PROGRESS_NAME).unlink()
    swap_dir(work, out)
    return index
