"""The DVC workflow end to end, with a local remote: repro, push, clone, pull, sync, diff."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from conftest import BIN, planned_jobs, run, snakemake

from reconlab.config import load_params

pytestmark = pytest.mark.slow


def _dvc(repo, *args, check=True):
    return run([sys.executable, "-m", "dvc", *args], repo, check=check)


def _git(repo, *args):
    return run(["git", *args], repo)


def _reconlab(repo, *args):
    return run([str(BIN / "reconlab"), *args], repo)


def test_repro_push_clone_pull_sync_and_metrics_diff(smoke_copy, tmp_path):
    # A project on which the smoke pipeline ran (outputs and Snakemake metadata included), made
    # into a fresh git + DVC repo. Its params.yaml *is* the smoke/offline config, so plain
    # commands (`dvc repro`, `snakemake`) use it and find the outputs up to date.
    repo = smoke_copy
    merged = load_params(
        repo / "params.yaml", [repo / "config/offline.yaml", repo / "config/smoke.yaml"]
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.org")
    _git(repo, "config", "user.name", "test")
    _dvc(repo, "remote", "add", "-d", "local", str(tmp_path / "remote"))

    # dvc repro runs Snakemake through the one wrapper stage and writes dvc.lock.
    out = _dvc(repo, "repro")
    assert "Running stage 'reproduce'" in out.stdout
    assert "Nothing to be done" in out.stdout + out.stderr
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert {o["path"] for o in lock["stages"]["reproduce"]["outs"]} >= {"data/prepared", "results"}
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first run")
    _dvc(repo, "push")

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "data").exists()
    _reconlab(clone, "sync")
    assert (clone / "data/prepared/manifest.csv").read_bytes() == (
        repo / "data/prepared/manifest.csv"
    ).read_bytes()
    dry = snakemake(clone, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    assert json.loads(_dvc(clone, "status", "--json").stdout) == {}

    # A clone whose params no longer match dvc.lock: sync refuses before touching anything.
    stale = clone / "params.yaml"
    stale.write_text(stale.read_text().replace("title: reconlab report", "title: edited"))
    proc = run([str(BIN / "reconlab"), "sync"], clone, check=False)
    assert proc.returncode == 1
    assert "dvc status is not clean after pull, refusing to touch outputs" in proc.stderr

    # A changed value, rerun, record, commit: dvc metrics diff shows it between commits.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["fields"]["per_family"]["test"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "prepare_images" not in planned_jobs(repo)
    snakemake(repo)
    _reconlab(repo, "record")
    assert json.loads(_dvc(repo, "status", "--json").stdout) == {}
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "three crops per photo")
    diff = json.loads(_dvc(repo, "metrics", "diff", "HEAD~1", "--json").stdout)
    change = diff["metrics/data.json"]["fields.count.test"]
    assert (change["old"], change["new"]) == (2 * 6, 3 * 6)
