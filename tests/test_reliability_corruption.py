"""Corrupted artifacts: flipped bytes or truncation of a feature shard, a feature-cache index, a
resumable checkpoint, a prepared crop and a fields file are detected, named, and either
recomputed (rerun the producing command) or refused — never silently used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from reliability_files import FEATURES, tree_bytes

from reconlab.cli import main
from reconlab.features.cache import FeatureCache

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--config", str(ROOT / "params.yaml"), "--configfile", str(ROOT / "config/smoke.yaml")]
DECODER = {"epochs": 1, "batch_size": 2, "width": 8, "checkpoint_every": 1, "max_samples": 1}


def flip(path: Path, at: float = 0.6, n: int = 8) -> None:
    """XOR ``n`` bytes at fraction ``at`` of the file (same size, different content)."""
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    for k in range(i, min(i + n, len(data))):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {"flipped": flip, "truncated": truncate}


def cli(capsys, *args: str) -> tuple[int, str]:
    rc = main(list(args))
    err = capsys.readouterr().err
    return rc, "\n".join(line for line in err.splitlines() if line.startswith("reconlab "))


@pytest.fixture
def cache_copy(tiny_feature_cache, tmp_path):
    import shutil

    shutil.copytree(tiny_feature_cache / "prepared", tmp_path / "prepared")
    shutil.copytree(tiny_feature_cache / "cache", tmp_path / "cache")
    return tmp_path


def _train_decoder(capsys, root: Path) -> tuple[int, str]:
    return cli(
        capsys,
        "train-decoder",
        "--params", json.dumps(DECODER),
        "--features", str(root / "cache"),
        "--manifest", str(root / "prepared" / "manifest.csv"),
        "--out", str(root / "decoder"),
        "--no-progress",
    )  # fmt: skip


def _recache(capsys, root: Path) -> tuple[int, str]:
    return cli(
        capsys,
        "cache-features",
        "--params", json.dumps(FEATURES),
        "--backbone", "vit",
        "--prepared", str(root / "prepared"),
        "--out", str(root / "cache"),
        "--quiet",
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_feature_shard_is_refused_by_name_then_recomputed(cache_copy, capsys, damage):
    good = tree_bytes(cache_copy / "cache")
    shard = cache_copy / "cache" / "train" / "shard_00000.safetensors"
    DAMAGE[damage](shard)
    with pytest.raises(ValueError, match=rf"{shard}: corrupt feature shard \("):
        FeatureCache.open(cache_copy / "cache").split("train").verify()
    rc, err = _train_decoder(capsys, cache_copy)
    assert rc == 1
    assert err.startswith(f"reconlab train-decoder: error: {shard}: corrupt feature shard (")
    assert err.endswith("); rerun cache-features")
    assert not (cache_copy / "decoder" / "model.safetensors").exists()
    assert _recache(capsys, cache_copy)[0] == 0
    assert tree_bytes(cache_copy / "cache") == good  # recomputed, bit for bit


def test_tampered_shard_checksum_in_the_index_is_refused(cache_copy):
    index_path = cache_copy / "cache" / "index.json"
    index = json.loads(index_path.read_text())
    index["splits"]["train"]["shards"][0]["sha256"] = "0" * 64
    index_path.write_text(json.dumps(index))
    with pytest.raises(
        ValueError, match="shard_00000.safetensors: corrupt feature shard \\(sha256"
    ):
        FeatureCache.open(cache_copy / "cache").split("train").verify()


# truncation is slow: the flipped case already runs the same refusal and recompute
@pytest.mark.parametrize("damage", ["flipped", pytest.param("truncated", marks=pytest.mark.slow)])
def test_damaged_cache_index_is_refused_by_name_then_recomputed(cache_copy, capsys, damage):
    good = tree_bytes(cache_copy / "cache")
    index_path = cache_copy / "cache" / "index.json"
    DAMAGE[damage](index_path, **({"at": 0.3} if damage == "flipped" else {}))
    with pytest.raises(ValueError, match=rf"^{index_path}: "):
        FeatureCache.open(cache_copy / "cache")
    rc, err = _train_decoder(capsys, cache_copy)
    assert rc == 1 and err.startswith(f"reconlab train-decoder: error: {index_path}: ")
    assert _recache(capsys, cache_copy)[0] == 0
    assert tree_bytes(cache_copy / "cache") == good


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_prepared_crop_is_named_and_never_cached(cache_copy, capsys, damage):
    before = tree_bytes(cache_copy / "cache")
    crop = sorted((cache_copy / "prepared" / "images" / "train").glob("*.png"))[0]
    DAMAGE[damage](crop)
    rc, err = _recache(capsys, cache_copy)
    assert rc == 1
    assert err == (
        f"reconlab cache-features: error: {crop}: corrupt prepared image (sha256 differs from "
        f"{cache_copy / 'prepared' / 'manifest.csv'}); rerun prepare-images "
        "(snakemake -R prepare_images)"
    )
    assert tree_bytes(cache_copy / "cache") == before
    rc, err = _train_decoder(capsys, cache_copy)  # the decoder's RGB targets are checked too
    assert rc == 1 and f"{crop}: corrupt prepared image" in err


@pytest.mark.slow
def test_damaged_checkpoint_is_ignored_by_name_and_training_ends_the_same(tmp_path, caplog):
    cwd = os.getcwd()
    os.chdir(ROOT)  # the smoke overlay's data.source is the bundled photos
    try:
        assert main(["prepare-images", *SMOKE, "--out", str(tmp_path / "prepared")]) == 0
        train = ["tokenizer-train", *SMOKE, "--variant", "f4-FSQ3.3.3"]
        train += ["--images", str(tmp_path / "prepared" / "images")]
        assert main([*train, "--out", str(tmp_path / "full")]) == 0
        full = (tmp_path / "full" / "model.safetensors").read_bytes()
        for damage, how in DAMAGE.items():
            ckpt = tmp_path / damage / "last.pt"
            args = [*train, "--out", str(tmp_path / damage / "out"), "--checkpoint", str(ckpt)]
            assert main([*args, "--stop-after", "3"]) == 0
            assert ckpt.is_file()
            how(ckpt)
            caplog.clear()
            assert main(args) == 0
            warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
            assert len(warned) == 1 and warned[0].startswith(f"{ckpt}: corrupt checkpoint (")
            assert warned[0].endswith("); not used, training starts over")
            assert (tmp_path / damage / "out" / "model.safetensors").read_bytes() == full
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_fields_file_is_refused_by_name_then_recomputed(tmp_path, capsys, damage):
    fields = tmp_path / "fields"
    assert main(["make-fields", *SMOKE, "--out", str(fields)]) == 0
    good = tree_bytes(fields)
    DAMAGE[damage](fields / "train.npz")
    cell = ["sparse-cell", *SMOKE, "--cell", "baseline", "--fields", str(fields)]
    rc, err = cli(capsys, *cell, "--out", str(tmp_path / "cell"))
    assert rc == 1
    assert err == (
        f"reconlab sparse-cell: error: {fields / 'train.npz'}: checksum does not match "
        f"{fields / 'index.json'}; rerun make_fields"
    )
    assert not (tmp_path / "cell").exists()
    assert main(["make-fields", *SMOKE, "--out", str(fields)]) == 0
    assert tree_bytes(fields) == good


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_decoder_model_is_refused_by_name(cache_copy, capsys, damage):
    assert _train_decoder(capsys, cache_copy)[0] == 0
    model = cache_copy / "decoder" / "model.safetensors"
    DAMAGE[damage](model, **({"at": 0.9} if damage == "flipped" else {}))
    rc, err = cli(
        capsys,
        "evaluate-decoder",
        "--params", json.dumps(DECODER),
        "--features", str(cache_copy / "cache"),
        "--manifest", str(cache_copy / "prepared" / "manifest.csv"),
        "--model", str(model),
        "--out", str(cache_copy / "decoder"),
    )  # fmt: skip
    assert rc == 1
    want = "corrupt (tensors do not match" if damage == "flipped" else "unreadable safetensors"
    assert err.startswith(f"reconlab evaluate-decoder: error: {model}: {want}")
    assert not (cache_copy / "decoder" / "metrics.json").exists()


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_tokenizer_model_is_refused_by_name(tmp_path, damage):
    from reconlab.config import TokenizerConfig, from_section, load_params
    from reconlab.tokenizer.train import build_from_config, load_model, model_config, save_model

    section = load_params(ROOT / "params.yaml", [ROOT / "config/smoke.yaml"])["tokenizer"]
    mc = model_config("f4-FSQ3.3.3", from_section(TokenizerConfig, section))
    path = tmp_path / "model.safetensors"
    save_model(path, build_from_config(mc), mc)
    load_model(path)  # intact: loads
    DAMAGE[damage](path, **({"at": 0.9} if damage == "flipped" else {}))
    with pytest.raises(ValueError, match=rf"^{path}: (corrupt|unreadable safetensors)"):
        load_model(path)


@pytest.mark.slow  # three fresh processes importing torch; in-process: test_io
def test_model_files_are_byte_identical_across_processes(tmp_path):
    """safetensors writes header metadata in hash-map order, random per process; the checksummed
    writer sorts it, so equal models are equal files (DVC hashes, determinism)."""
    import subprocess
    import sys

    code = (
        "import sys, torch; from reconlab.io import save_safetensors; torch.manual_seed(0); "
        "save_safetensors(sys.argv[1], {'w': torch.randn(4, 4), 'b': torch.zeros(3)}, "
        "{'config': '{}', 'train': '{}', 'zeta': 'z'})"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    for name in ("a", "b", "c"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, env=env)
    a = (tmp_path / "a").read_bytes()
    assert (tmp_path / "b").read_bytes() == a == (tmp_path / "c").read_bytes()
