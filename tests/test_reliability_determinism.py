"""Determinism (decision 7): two clean smoke runs on one machine give identical metrics files
(up to keys that measure the run itself: wall time, throughput, memory, timestamps) and
identical feature-cache checksums. The first run is the shared session smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SMOKE, copy_project, snakemake

pytestmark = pytest.mark.slow

# Keys that measure the run rather than its result.
TIMING = ("seconds", "per_step", "started", "finished", "peak_mem", "precision_reason")


def _timing(key: str) -> bool:
    return key.endswith("_s") or any(t in key for t in TIMING)


def _without_timing(obj):
    if isinstance(obj, dict):
        return {k: _without_timing(v) for k, v in obj.items() if not _timing(k)}
    if isinstance(obj, list):
        return [_without_timing(v) for v in obj]
    return obj


def _metric_files(project: Path) -> list[str]:
    found = [*(project / "metrics").rglob("*.json"), *(project / "results/metrics").rglob("*.json")]
    return sorted(p.relative_to(project).as_posix() for p in found)


def _precisions(project: Path) -> dict[str, str]:
    """Resolved precision per feature cache (``precision: auto`` is decided by a timing probe)."""
    return {
        p.parent.name: json.loads(p.read_text()).get("precision", "?")
        for p in sorted((project / "data/features").glob("*/index.json"))
    }


def assert_same_results(a: Path, b: Path) -> None:
    """Metrics files equal up to timing keys; feature-cache shard checksums equal."""
    assert _precisions(a) == _precisions(b), (
        "precision: auto resolved differently in the two runs (a start-up timing probe decides "
        f"it, see reconlab.runtime): {_precisions(a)} vs {_precisions(b)}"
    )
    names = _metric_files(a)
    assert len(names) >= 6 and names == _metric_files(b)
    for name in names:
        ma, mb = (json.loads((p / name).read_text()) for p in (a, b))
        assert _without_timing(ma) == _without_timing(mb), name
    caches = sorted(p.parent.name for p in (a / "data/features").glob("*/index.json"))
    assert caches
    for cache in caches:
        shards = [_shard_checksums(p / "data/features" / cache / "index.json") for p in (a, b)]
        assert shards[0] == shards[1] and shards[0], cache


def _shard_checksums(index_path: Path) -> list[tuple[str, str, str]]:
    index = json.loads(index_path.read_text())
    return [
        (split, s["file"], s["sha256"])
        for split in sorted(index["splits"])
        for s in index["splits"][split]["shards"]
    ]


def test_two_clean_smoke_runs_give_identical_metrics_and_cache_checksums(smoke_project, tmp_path):
    second = copy_project(tmp_path / "second")
    snakemake(second, *SMOKE)
    assert_same_results(smoke_project, second)
