"""A small summary of every feature cache: what the report shows and the metrics DVC diffs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconlab.features.cache import FeatureCache
from reconlab.provenance import COMPUTE_KEYS


def summarize_caches(roots: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per cache: id, model, weights identity, untrained flag, geometry and counts.

    Every shard is verified (size, shapes, sha256) on the way, so a summary is never written
    for a cache that is not intact.
    """
    rows = []
    for root in roots:
        cache = FeatureCache.open(Path(root))
        i = cache.index
        row = {
            "backbone_id": i["backbone_id"],
            "model": i["model"],
            "weights": i["weights"],
            "weights_id": i["weights_id"],
            "untrained": cache.untrained,
            "dtype": i["dtype"],
            "image_size": i["image_size"],
            "grid": i["grid"],
            "embed_dim": i["embed_dim"],
            "num_prefix_tokens": i["num_prefix_tokens"],
            "layers": i["layers"],
            **{k: i.get(k, "unknown") for k in COMPUTE_KEYS},
            "count": {},
            "shards": 0,
        }
        for split in cache.splits:
            s = cache.split(split)
            s.verify()
            row["count"][split] = len(s)
            row["shards"] += len(s.shards)
        rows.append(row)
    return rows


def features_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Scalars only, per backbone: image count per split, grid cells, embedding width; and one
    ``compute`` block (device, resolved precision, CPU class, torch) over the caches."""
    from reconlab.provenance import summarize_compute

    metrics: dict[str, Any] = {
        r["backbone_id"]: {
            "untrained": r["untrained"],
            "tokens_per_image": r["grid"][0] * r["grid"][1],
            "embed_dim": r["embed_dim"],
            **{f"count_{split}": n for split, n in r["count"].items()},
        }
        for r in rows
    }
    metrics["compute"] = summarize_compute(rows)
    return metrics
