"""Tampered DVC storage: a changed object in the local cache makes ``dvc status`` unclean (so
``reconlab sync`` refuses to touch outputs); a changed object on a remote is refused by
``dvc pull`` when the remote has ``verify = true`` (DVC's default trusts the remote)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_COMMITTER_NAME="t",
               GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_EMAIL="t@example.org")  # fmt: skip
    cmd = [sys.executable, "-m", "dvc", *args[1:]] if args[0] == "dvc" else list(args)
    proc = subprocess.run(cmd, cwd=repo, env=env, text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def repo(tmp_path) -> Path:
    """A git + DVC repo tracking ``data/metrics.bin``, pushed to a local remote."""
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "metrics.bin").write_bytes(bytes(range(256)) * 4)
    _run(repo, "git", "init", "-q")
    _run(repo, "dvc", "init", "-q")
    _run(repo, "dvc", "config", "core.analytics", "false")
    _run(repo, "dvc", "add", "-q", "data/metrics.bin")
    _run(repo, "dvc", "remote", "add", "-d", "store", str(tmp_path / "remote"))
    _run(repo, "dvc", "push", "-q")
    return repo


def _objects(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and len(p.parent.name) == 2]


def _tamper(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))


def test_tampered_cache_object_makes_dvc_status_unclean(repo):
    assert json.loads(_run(repo, "dvc", "status", "--json").stdout or "{}") == {}
    [obj] = _objects(repo / ".dvc" / "cache")
    _tamper(obj)
    status = json.loads(_run(repo, "dvc", "status", "--json").stdout)
    assert status == {
        "data/metrics.bin.dvc": [{"changed outs": {"data/metrics.bin": "not in cache"}}]
    }


def test_tampered_remote_object_is_refused_by_pull_with_verify(repo, tmp_path):
    [obj] = _objects(tmp_path / "remote")
    _tamper(obj)
    _run(repo, "dvc", "remote", "modify", "store", "verify", "true")
    (repo / "data" / "metrics.bin").unlink()
    for p in _objects(repo / ".dvc" / "cache"):
        os.chmod(p, 0o644)
        p.unlink()
    pull = _run(repo, "dvc", "pull", check=False)
    assert pull.returncode != 0
    assert not (repo / "data" / "metrics.bin").exists()  # never checked out
    status = json.loads(_run(repo, "dvc", "status", "--json").stdout)
    assert status == {
        "data/metrics.bin.dvc": [{"changed outs": {"data/metrics.bin": "not in cache"}}]
    }
