"""SIGKILL inside long stages: real ``reconlab`` subprocesses are killed at several points (each
point is a file the stage has just written, so it lands mid-stage), then the same command is
rerun; it completes, and its results equal those of an uninterrupted run. After every kill no
half-written output is in place: final outputs are either absent or the previous complete ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from reliability_files import FEATURES, SMALL_DATA, good_folder, tree_bytes
from safetensors.torch import load_file

from reconlab.io import read_csv, sha256_file

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--config", str(ROOT / "params.yaml"), "--configfile", str(ROOT / "config/smoke.yaml")]
RECONLAB = [sys.executable, "-m", "reconlab.cli"]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="2")
    env.pop("RECONLAB_DEBUG", None)
    return env


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([*RECONLAB, *args], cwd=cwd, env=_env(), text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def kill_when(
    args: list[str], cwd: Path, ready: Callable[[int], bool], timeout: float = 300
) -> None:
    """Start ``reconlab *args``; SIGKILL it as soon as ``ready(pid)`` holds (polled every 5 ms).

    Fails when the command finishes before the point was reached (the kill must land mid-stage).
    """
    proc = subprocess.Popen(
        [*RECONLAB, *args], cwd=cwd, env=_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while not ready(proc.pid):
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace")[-2000:]
                raise AssertionError(
                    f"finished (rc {proc.returncode}) before the kill point\n{err}"
                )
            assert time.monotonic() < deadline, "kill point never reached"
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def count(pattern: str, root: Path) -> int:
    """Files matching ``pattern`` under ``root`` (0 while a folder vanishes under the walk)."""
    try:
        return len(list(root.glob(pattern)))
    except FileNotFoundError:
        return 0


def changes_of(path: Path) -> Callable[[], int]:
    """How many distinct versions of ``path`` have been seen so far (atomic renames)."""
    seen: set[tuple[int, int]] = set()

    def versions() -> int:
        try:
            st = path.stat()
        except FileNotFoundError:
            return len(seen)
        seen.add((st.st_ino, st.st_mtime_ns))
        return len(seen)

    return versions


# --- prepare_images ------------------------------------------------------------------------------


def test_prepare_images_killed_at_three_points_then_rerun_equals_uninterrupted(tmp_path):
    src = good_folder(tmp_path / "photos", n=12)
    params = json.dumps({"source": str(src), **SMALL_DATA, "crops_per_image": 8})
    cmd = ["prepare-images", "--params", params, "--out"]
    run([*cmd, str(tmp_path / "ref")], tmp_path)
    out = tmp_path / "out"

    def crops(pid: int) -> int:  # in this run's own staging folder (the name carries its pid)
        return count(f".staging.{pid}.*/images/*/*.png", out)

    points = [
        lambda pid: count(f".staging.{pid}.*", out) > 0,  # staging made, decoding under way
        lambda pid: crops(pid) >= 8,  # first photo's crops written
        lambda pid: crops(pid) >= 24,  # a quarter of the crops
    ]
    for ready in points:
        kill_when([*cmd, str(out)], tmp_path, ready)
        # Never a half-replaced output: no manifest (the commit marker) means nothing counts;
        # a manifest (the kill landed after the swap) means every listed crop is there.
        if (out / "manifest.csv").exists():
            rows = read_csv(out / "manifest.csv")
            assert all(sha256_file(out / r["file"]) == r["sha256"] for r in rows)
    run([*cmd, str(out)], tmp_path)
    assert tree_bytes(out) == tree_bytes(tmp_path / "ref")
    assert not list(out.glob(".*")), "staging folders of killed runs are left behind"


# --- cache_features ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kills")
    src = good_folder(root / "photos", n=6)
    params = json.dumps({"source": str(src), **SMALL_DATA, "crops_per_image": 2})
    run(["prepare-images", "--params", params, "--out", str(root / "prepared")], root)
    return root


def _cache_cmd(root: Path, out: str) -> list[str]:
    return ["cache-features", "--params", json.dumps(FEATURES), "--backbone", "vit", "--quiet",
            "--prepared", str(root / "prepared"), "--out", str(root / out)]  # fmt: skip


def test_cache_features_killed_at_three_points_then_rerun_equals_uninterrupted(prepared):
    run(_cache_cmd(prepared, "ref"), prepared)
    partial = prepared / ".cache.partial"
    for n in (1, 3, 4):  # after the first shard, mid-way, and with one split nearly done
        ready = lambda _pid, n=n: count("*/shard_*.safetensors", partial) >= n  # noqa: E731
        kill_when(_cache_cmd(prepared, "cache"), prepared, ready)
        assert not (prepared / "cache").exists()  # only the work folder, never a half cache
    run(_cache_cmd(prepared, "cache"), prepared)
    got, ref = tree_bytes(prepared / "cache"), tree_bytes(prepared / "ref")
    assert got.keys() == ref.keys() and len(got) > 4
    assert all(got[k] == ref[k] for k in got if k != "index.json")  # every shard, bit for bit
    assert _index_without_timing(got["index.json"]) == _index_without_timing(ref["index.json"])


def _index_without_timing(raw: bytes) -> dict:
    # precision_reason quotes a timing probe ("probe 0.43x fp32"), which varies run to run.
    return {k: v for k, v in json.loads(raw).items() if k != "precision_reason"}


# --- train_decoder -------------------------------------------------------------------------------

DECODER = {"epochs": 3, "batch_size": 2, "width": 8, "checkpoint_every": 1, "max_samples": 1}
DECODER["precision"] = "fp32"  # see reliability_files.FEATURES


def _decoder_cmd(root: Path, out: str) -> list[str]:
    return ["train-decoder", "--params", json.dumps(DECODER), "--features", str(root / "ref"),
            "--manifest", str(root / "prepared" / "manifest.csv"), "--out", str(root / out),
            "--no-progress", "--threads", "2"]  # fmt: skip


def test_train_decoder_killed_at_three_points_then_rerun_equals_uninterrupted(prepared):
    if not (prepared / "ref" / "index.json").exists():
        run(_cache_cmd(prepared, "ref"), prepared)
    run(_decoder_cmd(prepared, "dec_ref"), prepared)
    versions = changes_of(prepared / "dec" / ".ckpt" / "last.pt")
    for n in (1, 3, 5):  # checkpoints of steps 1, 3 and 5 of 9
        kill_when(_decoder_cmd(prepared, "dec"), prepared, lambda _pid, n=n: versions() >= n)
        assert not (prepared / "dec" / "model.safetensors").exists()
    run(_decoder_cmd(prepared, "dec"), prepared)
    ref, got = (load_file(prepared / d / "model.safetensors") for d in ("dec_ref", "dec"))
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    losses = [
        [
            (r["epoch"], r["train_loss"], r["val_loss"])
            for r in read_csv(prepared / d / "train_log.csv")
        ]
        for d in ("dec_ref", "dec")
    ]
    assert losses[0] == losses[1] and len(losses[0]) == 3


# --- train_tokenizer -----------------------------------------------------------------------------


def test_train_tokenizer_killed_at_three_points_then_rerun_equals_uninterrupted(tmp_path):
    run(["prepare-images", *SMOKE, "--out", str(tmp_path / "prepared")], ROOT)
    overlay = tmp_path / "steps.yaml"
    overlay.write_text("tokenizer:\n  precision: fp32\n  train: {steps: 8, checkpoint_every: 1}\n")
    base = ["tokenizer-train", *SMOKE, str(overlay), "--variant", "f4-FSQ3.3.3",
            "--images", str(tmp_path / "prepared" / "images")]  # fmt: skip
    run([*base, "--out", str(tmp_path / "ref"), "--checkpoint", str(tmp_path / "ref.pt")], ROOT)
    ckpt = tmp_path / "ckpt.pt"
    cmd = [*base, "--out", str(tmp_path / "tok"), "--checkpoint", str(ckpt)]
    versions = changes_of(ckpt)
    for n in (1, 3, 5):
        kill_when(cmd, ROOT, lambda _pid, n=n: versions() >= n)
        assert not (tmp_path / "tok" / "model.safetensors").exists()
    run(cmd, ROOT)
    ref = (tmp_path / "ref" / "model.safetensors").read_bytes()
    assert (tmp_path / "tok" / "model.safetensors").read_bytes() == ref
    logs = [json.loads((tmp_path / d / "train_log.json").read_text()) for d in ("ref", "tok")]
    assert logs[0]["final"] == logs[1]["final"]
    rows = [[{k: v for k, v in r.items() if k != "seconds"} for r in g["rows"]] for g in logs]
    assert rows[0] == rows[1] and len(rows[0]) >= 3


# --- one sparse cell -----------------------------------------------------------------------------


def test_sparse_cell_killed_at_three_points_then_rerun_equals_uninterrupted(tmp_path):
    run(["make-fields", *SMOKE, "--out", str(tmp_path / "fields")], ROOT)
    overlay = tmp_path / "steps.yaml"
    overlay.write_text("sparse:\n  train: {steps: 8, checkpoint_every: 1, precision: fp32}\n")
    base = [
        "sparse-cell",
        *SMOKE,
        str(overlay),
        "--cell",
        "baseline",
        "--fields",
        str(tmp_path / "fields"),
    ]
    run([*base, "--out", str(tmp_path / "ref")], ROOT)
    versions = changes_of(tmp_path / "cell" / ".ckpt" / "last.pt")
    for n in (1, 3, 5):
        cell = [*base, "--out", str(tmp_path / "cell")]
        kill_when(cell, ROOT, lambda _pid, n=n: versions() >= n)
        assert not (tmp_path / "cell" / "metrics.json").exists()
    run([*base, "--out", str(tmp_path / "cell")], ROOT)
    ref, got = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("ref", "cell"))
    for key in ("history", "val", "test", "parameters"):
        assert got[key] == ref[key], key
