"""The DVC workflow end to end, with a local remote: record, repro, push, clone, sync, diff."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from conftest import BIN, ROOT, SMOKE, SMOKE_METRICS, planned_jobs, run, snakemake

pytestmark = pytest.mark.slow


def _dvc(repo, *args, check=True):
    return run([sys.executable, "-m", "dvc", *args], repo, check=check)


def _git(repo, *args):
    return run(["git", *args], repo)


def _reconlab(repo, *args, check=True):
    return run([str(BIN / "reconlab"), *args], repo, check=check)


def _metrics(repo):
    return {f.name: f.read_bytes() for f in (repo / "metrics").glob("*.json")}


def test_round_trip_with_overlays_then_metrics_diff_of_the_baseline(smoke_copy, tmp_path):
    # The smoke run (with overlays, as a user runs it) in a repo with the committed baseline.
    repo = smoke_copy
    baseline = _metrics(repo)
    assert baseline == {f.name: f.read_bytes() for f in (ROOT / "metrics").glob("*.json")}
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.org")
    _git(repo, "config", "user.name", "test")
    _dvc(repo, "remote", "add", "-d", "local", str(tmp_path / "remote"))

    # (d) record names the configuration: dvc.lock's cmd carries the overlays it came from,
    # and `dvc repro` runs with them (Snakemake: nothing to do). metrics/ stays the baseline's.
    _reconlab(repo, "record", "--config-name", "smoke")
    out = _dvc(repo, "repro", "--force")
    assert "Running stage 'reproduce'" in out.stdout
    assert "Nothing to be done" in out.stdout + out.stderr
    cmd = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["reproduce"]["cmd"]
    assert cmd == "snakemake --cores all " + " ".join(SMOKE)
    assert _metrics(repo) == baseline
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "smoke run")
    _dvc(repo, "push")

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert sorted(p.name for p in (clone / "data").iterdir()) == ["inputs"]  # manifests: git
    _reconlab(clone, "sync", *SMOKE)  # pull, dvc status clean, touch, then checks -n is empty
    assert (clone / "data/prepared/manifest.csv").read_bytes() == (
        repo / "data/prepared/manifest.csv"
    ).read_bytes()
    assert planned_jobs(clone, *SMOKE) == set()
    assert json.loads(_dvc(clone, "status", "--json").stdout) == {}
    assert "didn't change, skipping" in _dvc(clone, "repro").stdout
    assert _metrics(clone) == baseline

    # A clone whose params no longer match dvc.lock: sync refuses before touching anything.
    stale = clone / "params.yaml"
    stale.write_text(stale.read_text().replace("title: reconlab report", "title: edited"))
    proc = _reconlab(clone, "sync", "--config-name", "smoke", check=False)
    assert proc.returncode == 1
    assert "dvc status is not clean after pull, refusing to touch outputs" in proc.stderr

    # dvc metrics diff between two commits of the baseline configuration. A full offline run
    # takes half an hour, so this repo names smoke its baseline: only then does metrics/ move.
    table = repo / "config/configurations.yaml"
    table.write_text(table.read_text().replace("baseline: offline", "baseline: smoke"))
    _reconlab(repo, "record", "--config-name", "smoke")
    assert _metrics(repo) == {f.name: f.read_bytes() for f in (repo / SMOKE_METRICS).glob("*.json")}
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "smoke is this repo's baseline")

    # One number changed (the lowest JPEG quality of the baseline curve): only the JPEG
    # baseline and what reads it rerun, and the diff shows the variant's gap to JPEG move.
    smoke = repo / "config/smoke.yaml"
    smoke.write_text(smoke.read_text().replace("qualities: [5, 50, 90]", "qualities: [2, 50, 90]"))
    assert planned_jobs(repo, *SMOKE) == {"jpeg_baseline", "summarize_tokenizer", "report"}
    snakemake(repo, *SMOKE)
    _reconlab(repo, "record", *SMOKE)
    assert json.loads(_dvc(repo, "status", "--json").stdout) == {}
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "JPEG curve from quality 2")
    diff = json.loads(_dvc(repo, "metrics", "diff", "HEAD~1", "--json").stdout)
    moved = {k for k, v in diff["metrics/tokenizer.json"].items() if v["old"] != v["new"]}
    assert "variants.f4x4-K16.jpeg_delta_db" in moved
    assert "metrics/data.json" not in diff  # nothing upstream of the JPEG curve moved
    changed = {k for v in diff.values() for k in v}
    assert not [k for k in changed if "wall" in k or k.endswith("_img_s")]
