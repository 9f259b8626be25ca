"""Shared fixtures: a throw-away copy of the project for real Snakemake and DVC runs."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What a pipeline run needs; outputs, caches and the venv stay behind.
PROJECT_FILES = ["Snakefile", "params.yaml", "dvc.yaml", ".dvcignore", ".gitignore"]
PROJECT_DIRS = ["workflow", "config", "src", "profiles", "metrics"]  # metrics/: the baseline
# One --configfile with both files: Snakemake keeps only the last of repeated --configfile flags.
SMOKE = ["--configfile", "config/offline.yaml", "config/smoke.yaml"]
# Where a smoke run writes its metrics (its configuration's folder; metrics/ is the baseline's).
SMOKE_METRICS = Path("results/metrics/smoke")


def project_env(project: Path) -> dict[str, str]:
    """Environment in which `reconlab` and the Snakefile import the copy's own sources."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(project / "src")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def copy_project(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in PROJECT_FILES:
        shutil.copy2(ROOT / f, dest / f)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for d in PROJECT_DIRS:
        shutil.copytree(ROOT / d, dest / d, ignore=ignore)
    (dest / ".dvc").mkdir()
    shutil.copy2(ROOT / ".dvc" / "config", dest / ".dvc" / "config")
    return dest


def run(cmd: list[str], cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=project_env(cwd), text=True, capture_output=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def snakemake(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "snakemake"), "--cores", "all", *args], project, check=check)


def snakemake_plan(project: Path, *args: str) -> list[dict[str, str]]:
    """Snakemake's own plan, machine-readable: one row per output file of the DAG, from
    ``snakemake --summary`` (tab-separated: ``output_file``, ``date``, ``rule``,
    ``log-file(s)``, ``status``, ``plan``; ``plan`` is ``update pending`` or ``no update``).

    ``--summary`` honours targets and ``--configfile`` but not ``--until``: name the target.
    """
    if "--until" in args:
        raise ValueError("snakemake --summary ignores --until; pass the rule as a target")
    lines = snakemake(project, "--summary", *args).stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("output_file\t"))
    return list(csv.DictReader(lines[start:], delimiter="\t"))


def planned_jobs(project: Path, *args: str) -> set[str]:
    """Rule names a run would execute (``rule all`` has no outputs, so it is never listed)."""
    return {r["rule"] for r in snakemake_plan(project, *args) if r["plan"] == "update pending"}


def metrics_file(project: Path, stage: str, *args: str) -> Path:
    """The metrics JSON that a run with these snakemake arguments writes for ``stage``.

    Overlays are read from ``--configfile a b ...`` (targets must come before it).
    """
    from reconlab.provenance import metrics_dir, resolve_configuration

    overlays = list(args[args.index("--configfile") + 1 :]) if "--configfile" in args else []
    name, _ = resolve_configuration(None, overlays, project)
    return project / metrics_dir(name) / f"{stage}.json"


def _needs_smoke(item: pytest.Item) -> bool:
    return bool({"smoke_project", "smoke_copy"} & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the smoke pipeline's outputs is slow, whatever its own marks say
    (the run takes minutes), so ``pytest -m "not slow"`` never starts it.

    Order, for pytest-xdist (which hands each worker a contiguous share of this list): one smoke
    test first, so the first worker starts the shared smoke run at once; every test that does not
    need it next; the other smoke tests last, so no worker waits on the smoke run's lock while
    tests that need no smoke run are still queued.
    """
    smoke = [item for item in items if _needs_smoke(item)]
    for item in smoke:
        item.add_marker(pytest.mark.slow)
    rest = [item for item in items if not _needs_smoke(item)]
    items[:] = smoke[:1] + rest + smoke[1:]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the project (sources, workflow, params) with no outputs."""
    return copy_project(tmp_path / "project")


def built_once(tmp_path_factory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` once per test run, shared by every pytest-xdist worker.

    The first worker to ask builds it under a file lock in the run's common temporary folder
    (pytest-xdist's documented pattern for session data); the others wait for the lock and reuse
    the result. Without xdist this is a plain once-per-session build.
    """
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-of-<user>/pytest-<n>/, common to the run's workers
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            done.write_text(str(build(folder)))
    return Path(done.read_text())


@pytest.fixture(scope="session")
def tiny_feature_cache(tmp_path_factory) -> Path:
    """``prepared/`` (4 photos: 2 train, 1 val, 1 test crop) and ``cache/`` (a random-weight
    ViT-S/14 at 28 px, 2-image shards), built once a run (treat read-only; copy to damage)."""
    from reliability_files import make_feature_cache

    return built_once(tmp_path_factory, "tiny_feature_cache", make_feature_cache)


def _smoke_run(folder: Path) -> Path:
    dest = copy_project(folder / "project")
    snakemake(dest, *SMOKE)
    return dest


@pytest.fixture(scope="session")
def smoke_project(tmp_path_factory) -> Path:
    """One project copy on which the smoke pipeline has already run, once a test run (shared by
    every test and every xdist worker: treat read-only, take ``smoke_copy`` to change it)."""
    return built_once(tmp_path_factory, "smoke", _smoke_run)


@pytest.fixture
def smoke_copy(smoke_project: Path, tmp_path: Path) -> Path:
    """A private copy of ``smoke_project``: outputs, mtimes and Snakemake metadata included."""
    return Path(shutil.copytree(smoke_project, tmp_path / "project", symlinks=True))
