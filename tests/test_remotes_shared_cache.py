"""A group's shared DVC cache on one file system: a second clone reuses the first's artifacts.

Set up as the README says: `dvc cache dir <shared folder>`, `dvc config cache.shared group`
(cache files 0444, folders group-writable and setgid) and `dvc config cache.type symlink`, so a
clone's outputs are links into the cache and nothing is copied. Symlinks rather than hardlinks:
a hardlinked output is the cache file itself, owned by whoever cached it, and
`snakemake --touch` (run by `reconlab sync`) could not change its mtime for anyone else.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import BIN, SMOKE, planned_jobs, run
from test_remotes import dvc, init_repo

pytestmark = pytest.mark.slow


def test_second_clone_links_to_the_first_clones_cached_features(smoke_copy, tmp_path):
    shared = tmp_path / "group-cache"
    first = init_repo(smoke_copy)
    dvc(first, "cache", "dir", str(shared))
    dvc(first, "config", "cache.shared", "group")
    dvc(first, "config", "cache.type", "symlink")
    run([str(BIN / "reconlab"), "record", "--config-name", "smoke"], first)
    run(["git", "add", "-A"], first)
    run(["git", "commit", "-qm", "smoke run, shared cache"], first)

    # The second clone has no remote: `reconlab sync` finds every object in the shared cache.
    second = tmp_path / "second"
    run(["git", "clone", "-q", str(first), str(second)], tmp_path)
    run([str(BIN / "reconlab"), "sync", "--config-name", "smoke"], second)
    assert planned_jobs(second, *SMOKE) == set()  # nothing to be done

    shards = sorted((second / "data/features").rglob("*.safetensors"))
    assert shards
    for shard in shards:
        twin = first / shard.relative_to(second)
        assert shard.is_symlink() and Path(os.readlink(shard)).is_relative_to(shared), shard
        assert os.stat(shard).st_ino == os.stat(twin).st_ino  # one file on disk, not a copy
    cached = Path(os.path.realpath(shards[0]))
    assert stat.S_IMODE(cached.stat().st_mode) == 0o444
    assert stat.S_IMODE(cached.parent.stat().st_mode) == 0o2775  # group-writable, setgid
    # What the second clone adds on disk for its features: links only.
    real = sum(p.stat().st_size for p in shards)
    added = sum(p.lstat().st_size for p in shards)
    assert added < real / 100
