"""The bad-input catalogue (issue 14): one test per kind of input people really have.

Each test first makes a good output, then feeds the bad input through the real ``reconlab`` CLI
(in-process, or a subprocess where the process itself must be constrained), and asserts a clear
answer — a recorded skip, a correct decode, or one line naming the file or key — and that the
earlier good output is byte-for-byte intact.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BIN, SMOKE, copy_project, project_env, snakemake
from PIL import Image
from reliability_files import (
    BACKBONE,
    FEATURES,
    SMALL_DATA,
    good_folder,
    photo,
    png_claiming,
    tree_bytes,
)

from reconlab.cli import main
from reconlab.io import read_csv

SMALL = SMALL_DATA


def cli(capsys, *args: str) -> tuple[int, str]:
    """(exit code, the error line(s)) of ``reconlab *args`` (tqdm bars filtered out)."""
    rc = main(list(args))
    err = capsys.readouterr().err
    return rc, "\n".join(line for line in err.splitlines() if line.startswith("reconlab "))


def prepare(capsys, source: Path, out: Path, **params) -> tuple[int, str]:
    cfg = json.dumps({"source": str(source), **SMALL, **params})
    return cli(capsys, "prepare-images", "--params", cfg, "--out", str(out))


@pytest.fixture
def earlier(tmp_path, capsys):
    """A good prepare-images run on six photos: (source folder, output folder, its bytes)."""
    src = good_folder(tmp_path / "photos")
    out = tmp_path / "prepared"
    assert prepare(capsys, src, out)[0] == 0
    return src, out, tree_bytes(out)


def good_crops_kept(out: Path, before: dict[str, bytes]) -> None:
    """Every crop of the earlier run is still there, byte for byte (per-photo seeds; a new photo
    may move a photo to another split folder, so crops are matched by content)."""
    now = {data for name, data in tree_bytes(out).items() if name.startswith("images/")}
    kept = [name for name, data in before.items() if name.startswith("images/") and data in now]
    assert len(kept) == sum(name.startswith("images/") for name in before) > 0


# --- image files -------------------------------------------------------------------------------


def _bad_bytes(kind: str, good: bytes) -> bytes:
    if kind == "corrupt":  # flipped bytes inside the compressed data
        data = bytearray(good)
        for i in range(len(data) // 3, len(data) // 3 + 64):
            data[i] ^= 0xFF
        return bytes(data)
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "zero_byte":
        return b""
    if kind == "not_an_image":
        return b"%PDF-1.4\nthis is a document saved with a .png name\n"
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("corrupt", "unreadable image"),
        ("truncated", "unreadable image"),
        ("zero_byte", "empty file"),
        ("not_an_image", "not an image (format not recognised)"),
    ],
)
def test_broken_image_is_a_recorded_skip(earlier, capsys, kind, reason):
    src, out, before = earlier
    (src / f"bad_{kind}.png").write_bytes(_bad_bytes(kind, (src / "good0.png").read_bytes()))
    rc, err = prepare(capsys, src, out)
    assert rc == 0, err
    assert {r["file"]: r["reason"] for r in read_csv(out / "rejected.csv")} == {
        f"bad_{kind}.png": _starting(reason)
    }
    good_crops_kept(out, before)


class _starting(str):
    """Equal to any string that starts with it (for reasons that carry decoder details)."""

    def __eq__(self, other):
        return isinstance(other, str) and other.startswith(str(self))

    __hash__ = str.__hash__


def _mode_file(kind: str, path: Path) -> np.ndarray:
    """Write an image of ``kind`` to ``path``; return the RGB uint8 a correct decode gives."""
    rgb = photo(11)
    if kind == "16bit":
        gray = rgb[..., 0].astype(np.uint16) * 257
        Image.fromarray(gray).save(path)
        return np.repeat(rgb[..., :1], 3, 2)
    if kind == "cmyk":
        img = Image.fromarray(rgb).convert("CMYK")
        img.save(path.with_suffix(".tif"))
        return np.asarray(img.convert("RGB"))
    if kind == "palette":
        img = Image.fromarray(rgb).convert("P")
        img.save(path)
        return np.asarray(img.convert("RGB"))
    if kind == "alpha":  # half-transparent: composited over white
        Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(path)
        return np.round(rgb * (128 / 255) + 255 * (127 / 255)).astype(np.uint8)
    if kind == "1bit":
        img = Image.fromarray(rgb[..., 0] > 128).convert("1")
        img.save(path)
        return np.repeat(np.asarray(img.convert("L"))[..., None], 3, 2)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["16bit", "cmyk", "palette", "alpha", "1bit"])
def test_unusual_mode_decodes_to_the_right_rgb(earlier, capsys, kind):
    from reconlab.data.decode import decode_image

    src, out, before = earlier
    path = src / f"mode_{kind}.png"
    want = _mode_file(kind, path)
    path = path if path.exists() else path.with_suffix(".tif")
    got = decode_image(path)
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    rc, err = prepare(capsys, src, out)
    assert rc == 0, err
    assert {r["source"] for r in read_csv(out / "manifest.csv")} >= {path.name}
    assert read_csv(out / "rejected.csv") == []
    good_crops_kept(out, before)


def test_image_smaller_than_the_crop_is_upscaled_or_recorded(earlier, capsys):
    src, out, before = earlier
    Image.fromarray(photo(12, 20, 16)).save(src / "tiny.png")
    assert prepare(capsys, src, out, resize_shorter=None)[0] == 0
    assert "tiny.png" in {r["source"] for r in read_csv(out / "manifest.csv")}
    rc, _ = prepare(capsys, src, out, resize_shorter=None, small_images="reject")
    assert rc == 0
    rejected = {r["file"]: r["reason"] for r in read_csv(out / "rejected.csv")}
    assert rejected == {"tiny.png": "smaller than the crop (20x16 < 32)"}


def test_empty_folder_is_one_line_and_keeps_the_earlier_output(earlier, capsys, tmp_path):
    _, out, before = earlier
    (tmp_path / "empty").mkdir()
    rc, err = prepare(capsys, tmp_path / "empty", out)
    assert rc == 1
    assert (
        err
        == f"reconlab prepare-images: error: data.source: {tmp_path / 'empty'} contains no images (jpg, jpeg, png, tif, tiff, webp, searched recursively)"
    )
    assert tree_bytes(out) == before


def test_folder_of_only_bad_files_names_one_and_keeps_the_earlier_output(earlier, capsys, tmp_path):
    _, out, before = earlier
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"")
    (bad / "b.jpg").write_text("not a jpeg")
    rc, err = prepare(capsys, bad, out)
    assert rc == 1
    assert "none of the 2 files" in err and "(first rejected: a.png: empty file)" in err
    assert err.count("\n") == 0
    assert tree_bytes(out) == before


def test_symlink_loop_in_the_folder_is_a_recorded_skip(earlier, capsys):
    src, out, before = earlier
    os.symlink("loop.png", src / "loop.png")  # points at itself
    (src / "sub").mkdir()
    os.symlink("..", src / "sub" / "up")  # a directory cycle: not descended into
    rc, err = prepare(capsys, src, out)
    assert rc == 0, err
    rejected = {r["file"]: r["reason"] for r in read_csv(out / "rejected.csv")}
    assert rejected == {"loop.png": "unreadable file (Too many levels of symbolic links)"}
    good_crops_kept(out, before)


# --- params --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"crop_size": "large"}, "params: data.crop_size: expected integer, got 'large'"),
        (
            {"crop_sise": 32},
            "params: data.crop_sise: unknown key (did you mean 'crop_size'?); allowed keys here: crop_size,",
        ),
        ({"crop_size": 0}, "params: data.crop_size: 0 is out of range (minimum 16)"),
    ],
    ids=["wrong_type", "unknown_key", "out_of_range"],
)
def test_bad_params_are_one_line_naming_the_key(earlier, capsys, bad, message):
    src, out, before = earlier
    rc, err = prepare(capsys, src, out, **bad)
    assert rc == 1
    assert err.startswith("reconlab prepare-images: error: ") and "\n" not in err
    assert message in err
    assert tree_bytes(out) == before


# --- backbones and weights -----------------------------------------------------------------------


@pytest.fixture
def cached(tiny_feature_cache):
    """Prepared crops and a good feature cache of a real timm ViT-S/14 with random weights
    (the session's; every test here asserts that it leaves the cache byte for byte alone)."""
    return tiny_feature_cache


def _cache_with(capsys, root: Path, backbone: dict, backbone_id: str = "vit") -> tuple[int, str]:
    params = json.dumps({**FEATURES, "backbones": [backbone]})
    return cli(
        capsys,
        "cache-features",
        "--params", params,
        "--backbone", backbone_id,
        "--prepared", str(root / "prepared"),
        "--out", str(root / "cache"),
        "--quiet",
    )  # fmt: skip


def test_unknown_backbone_is_one_line_and_keeps_the_cache(cached, capsys):
    before = tree_bytes(cached / "cache")
    rc, err = _cache_with(capsys, cached, BACKBONE, backbone_id="dinov9")
    assert rc == 1
    assert "features.backbones: no backbone with id 'dinov9'; known: ['vit']" in err
    rc, err = _cache_with(capsys, cached, {**BACKBONE, "model": "vit_smal_patch14_dinov2"})
    assert rc == 1 and "features.backbones[0].model" in err and "\n" not in err
    assert tree_bytes(cached / "cache") == before


def test_weights_file_of_another_architecture_names_key_and_tensor(cached, capsys, tmp_path):
    import timm
    from safetensors.torch import save_file

    other = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    path = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    before = tree_bytes(cached / "cache")
    rc, err = _cache_with(capsys, cached, {**BACKBONE, "weights": str(path)})
    assert rc == 1 and "\n" not in err
    assert f"features.backbones[0].weights: {path} does not fit vit_small_patch14_dinov2" in err
    assert tree_bytes(cached / "cache") == before


def test_truncated_weights_file_names_the_file(cached, capsys, tmp_path):
    import timm
    from safetensors.torch import save_file

    model = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=False, img_size=28)
    path = tmp_path / "dinov2.safetensors"
    first = dict(list(model.state_dict().items())[:4])  # a few real tensors keep the file small
    save_file({k: v.contiguous() for k, v in first.items()}, str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = tree_bytes(cached / "cache")
    rc, err = _cache_with(capsys, cached, {**BACKBONE, "weights": str(path)})
    assert rc == 1 and "\n" not in err
    assert f"features.backbones[0].weights: {path}" in err
    assert tree_bytes(cached / "cache") == before


# --- training ------------------------------------------------------------------------------------


def test_nan_during_training_stops_with_the_step_number(capsys, tmp_path):
    smoke = ["--config", "params.yaml", "--configfile", "config/smoke.yaml"]
    cwd = os.getcwd()
    os.chdir(Path(__file__).resolve().parents[1])
    try:
        fields = tmp_path / "fields"
        assert main(["make-fields", *smoke, "--out", str(fields)]) == 0
        cell = ["sparse-cell", *smoke, "--cell", "baseline", "--fields", str(fields)]
        assert main([*cell, "--out", str(tmp_path / "cell")]) == 0
        before = tree_bytes(tmp_path / "cell")
        overlay = tmp_path / "lr.yaml"
        overlay.write_text("sparse:\n  train: {lr: 1.0e+30}\n")
        rc, err = cli(capsys, *cell, "--configfile", str(overlay), "--out", str(tmp_path / "cell"))
    finally:
        os.chdir(cwd)
    assert rc == 1
    assert err == "reconlab sparse-cell: error: sparse: loss is nan at step 1; lower train.lr"
    assert tree_bytes(tmp_path / "cell") == before


# --- the machine: full disk, read-only folder, concurrent runs -----------------------------------


def _prepare_subprocess(src: Path, out: Path, preexec=None) -> subprocess.CompletedProcess:
    cfg = json.dumps({"source": str(src), **SMALL})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run(
        [str(BIN / "reconlab"), "prepare-images", "--params", cfg, "--out", str(out)],
        capture_output=True, text=True, env=env, preexec_fn=preexec, timeout=120,
    )  # fmt: skip


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("reconlab ")]


def test_full_disk_is_one_line_and_keeps_the_earlier_output(earlier):
    src, out, before = earlier
    Image.fromarray(photo(20, 400, 300)).save(src / "big.png")

    def disk_of_1_kib():  # every file this process writes stops at 1 KiB (EFBIG, like ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    proc = _prepare_subprocess(src, out, disk_of_1_kib)
    assert proc.returncode == 1, proc.stderr[-2000:]
    [line] = _errors(proc.stderr)
    assert line.startswith("reconlab prepare-images: error: [Errno 27] File too large: ")
    assert str(out) in line and "Traceback" not in proc.stderr
    assert tree_bytes(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["images", "manifest.csv", "rejected.csv"]


def _without_permission_override() -> None:
    """In the child: drop CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH from the bounding set, so even
    root obeys permission bits after exec (prctl PR_CAPBSET_DROP); a no-op need for non-root."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_read_only_output_folder_is_one_line_and_keeps_the_earlier_output(earlier):
    src, out, before = earlier
    Image.fromarray(photo(21)).save(src / "new.png")
    os.chmod(out, 0o555)
    try:
        preexec = _without_permission_override if os.geteuid() == 0 else None
        proc = _prepare_subprocess(src, out, preexec)
    finally:
        os.chmod(out, 0o755)
    assert proc.returncode == 1, proc.stderr[-2000:]
    [line] = _errors(proc.stderr)
    assert line.startswith(f"reconlab prepare-images: error: [Errno 13] Permission denied: '{out}/")
    assert tree_bytes(out) == before


@pytest.mark.slow
def test_two_snakemake_runs_at_once_the_second_stops_with_a_clear_message(tmp_path):
    project = copy_project(tmp_path / "project")
    cmd = [str(BIN / "snakemake"), "--cores", "1", "data/prepared/manifest.csv", *SMOKE]
    env = project_env(project)
    first = subprocess.Popen(
        cmd, cwd=project, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    locks = project / ".snakemake" / "locks"
    deadline = time.monotonic() + 120
    while not (locks.is_dir() and any(locks.iterdir())):
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "the first run never took its lock"
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGSTOP)  # hold the first run inside its job, deterministically
    try:
        second = subprocess.run(cmd, cwd=project, env=env, text=True, capture_output=True)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out[-3000:]
    assert second.returncode == 1
    assert "Directory cannot be locked" in second.stdout + second.stderr
    rows = read_csv(project / "data" / "prepared" / "manifest.csv")
    assert rows and all((project / "data" / "prepared" / r["file"]).is_file() for r in rows)


@pytest.mark.slow
def test_snakemake_on_a_folder_of_awkward_files_records_every_skip(project, tmp_path):
    """The whole data stage through Snakemake (DAG build included: input manifests hash the
    folder) on odd names, a symlink loop, a directory cycle and a decompression bomb."""
    src = good_folder(tmp_path / "photos", n=4)
    Image.fromarray(photo(30)).save(src / os.fsdecode(b"caf\xe9.png"))
    os.symlink("loop.png", src / "loop.png")
    (src / "sub").mkdir()
    os.symlink("..", src / "sub" / "up")
    (src / "bomb.png").write_bytes(png_claiming(20000, 20000))
    overlay = project / "config" / "awkward.yaml"
    overlay.write_text(f"data: {{source: {json.dumps(str(src))}}}\n")
    snakemake(project, "data/prepared/manifest.csv", *SMOKE, "config/awkward.yaml")
    prepared = project / "data" / "prepared"
    rejected = {r["file"]: r["reason"] for r in read_csv(prepared / "rejected.csv")}
    assert set(rejected) == {"bomb.png", "loop.png"}
    assert rejected["loop.png"] == "unreadable file (Too many levels of symbolic links)"
    sources = {r["source"] for r in read_csv(prepared / "manifest.csv")}
    assert sources == {"caf\\xe9.png", "good0.png", "good1.png", "good2.png", "good3.png"}
    listing = (project / "data" / "inputs" / "data.source.tsv").read_text(encoding="utf-8")
    assert "caf\\xe9.png\t" in listing and "loop.png\t-\tunreadable" in listing


@pytest.mark.slow
def test_failed_snakemake_rerun_gives_the_earlier_outputs_back(project, tmp_path):
    """Snakemake deletes a job's outputs before running it; prepare_images' outputs are flagged
    ``update()``, so a failing rerun restores the earlier ones instead of losing them."""
    src = good_folder(tmp_path / "photos", n=4)
    overlay = project / "config" / "fail.yaml"
    overlay.write_text(f"data: {{source: {json.dumps(str(src))}, on_bad_image: fail}}\n")
    args = ["data/prepared/manifest.csv", *SMOKE, "config/fail.yaml"]
    snakemake(project, *args)
    prepared = project / "data" / "prepared"
    before = tree_bytes(prepared)
    (src / "broken.png").write_bytes(b"not a png")
    proc = snakemake(project, *args, check=False)
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "data: broken.png: not an image (format not recognised)" in out
    assert "Restored previous version of data/prepared/manifest.csv" in out
    assert tree_bytes(prepared) == before
