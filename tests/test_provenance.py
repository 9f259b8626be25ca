"""Code hashes derived from the import graph, input manifests and the run block (no Snakemake)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, project_env

from reconlab import provenance
from reconlab.inputs import HashCache, external_paths, input_manifests, manifest_text


@pytest.fixture
def src(tmp_path):
    """A private copy of the reconlab sources (edited by the tests)."""
    dest = tmp_path / "reconlab"
    shutil.copytree(ROOT / "src/reconlab", dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _names(command, root):
    return {m.removeprefix("reconlab.") for m in provenance.command_modules(command, root)}


def test_closure_follows_function_level_imports_but_not_sibling_commands(src):
    prepare = _names("prepare-images", src)
    fields = _names("make-fields", src)
    # prepare-images imports data.images inside its handler, which imports data.decode.
    assert {"data.cli", "data.images", "data.decode", "io", "cli", "config"} <= prepare
    # make-fields is registered in the same cli.py but never imports the image reader.
    assert "data.images" not in fields and "data.fields" in fields
    # decoder/data.py imports features.images inside a function.
    assert "features.images" in _names("train-decoder", src)
    # The report discovers its sections by computed name: every section is in the closure.
    sections = {p.stem for p in (src / "report/sections").glob("*.py")} - {"__init__"}
    assert {f"report.sections.{s}" for s in sections} <= _names("report", src)


def test_editing_a_deep_module_changes_exactly_the_commands_that_import_it(src):
    commands = ["sparse-cell", "sparse-aggregate", "make-fields", "prepare-images"]
    before = {c: provenance.command_code(c, src) for c in commands}
    enc = src / "sparse/encoding.py"  # sparse/cli -> study -> models -> encoding
    enc.write_text(enc.read_text() + "\n# an edit\n")
    after = {c: provenance.command_code(c, src) for c in commands}
    changed = {c for c in commands if before[c] != after[c]}
    assert changed == {"sparse-cell"}
    assert after["sparse-cell"].startswith("sparse-cell:")


def test_unknown_command_is_one_line():
    with pytest.raises(ValueError, match=r"no module in COMMAND_MODULES registers `reconlab nope`"):
        provenance.command_code("nope")


def test_disk_cache_is_used_and_sees_edits_that_keep_mtime(src, tmp_path):
    cache = tmp_path / "code-index.json"
    code = (
        "import sys; from pathlib import Path; from reconlab import provenance as p; "
        f"p.use_cache_file({str(cache)!r}); print(p.command_code('make-fields', Path({str(src)!r})))"
    )

    def run():
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=project_env(ROOT), check=True)  # fmt: skip
        return out.stdout.strip()

    first = run()
    assert cache.exists() and str(src / "data/fields.py") in cache.read_text()
    assert run() == first
    f = src / "data/fields.py"
    st = f.stat()
    data = f.read_bytes()
    f.write_bytes(data[:-1] + b" ")  # same size (trailing newline -> space), old mtime restored
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert run() != first


def test_external_paths_names_files_not_keywords():
    features = {
        "backbones": [
            {"id": "a", "weights": "random"},
            {"id": "b", "weights": "/w/b.pth"},
        ],
        "device": "cpu",
    }
    assert external_paths(features, "features") == {"features.backbones.b.weights": "/w/b.pth"}
    assert external_paths({"lpips_weights": None, "perceptual": {"weights": "none"}}, "x") == {}
    assert external_paths({"source": "skimage"}, "data") == {}


def test_manifest_follows_content_and_is_rewritten_only_on_change(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        (photos / f"{i}.png").write_bytes(bytes([i]) * 10)
    (photos / ".hidden").write_text("x")
    config = {"data": {"source": str(photos)}}
    out = tmp_path / "inputs"
    cache = tmp_path / "hashes.json"
    paths = input_manifests(config, out_dir=out, cache_path=cache)
    manifest = out / "data.source.tsv"
    assert paths == {"data.source": str(manifest)}
    lines = manifest.read_text().splitlines()
    assert [line.split("\t")[0] for line in lines[1:]] == ["0.png", "1.png", "2.png"]
    assert lines[2].split("\t")[1] == "10"
    mtime = manifest.stat().st_mtime_ns

    input_manifests(config, out_dir=out, cache_path=cache)
    assert manifest.stat().st_mtime_ns == mtime  # unchanged inputs: not rewritten

    # Same size, old mtime restored: still seen (the cache key includes ctime).
    f = photos / "1.png"
    st = f.stat()
    f.write_bytes(b"\xff" * 10)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    before = manifest.read_text()
    input_manifests(config, out_dir=out, cache_path=cache)
    assert manifest.read_text() != before
    assert manifest.read_text().count("\t10\t") == 3


def test_missing_input_names_the_key(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"params: data.source: /no/such/folder does not exist"
    ):
        input_manifests({"data": {"source": "/no/such/folder"}}, out_dir=tmp_path, cache_path=None)


def test_manifest_of_a_single_file(tmp_path):
    w = tmp_path / "w.pth"
    w.write_bytes(b"abc")
    text = manifest_text(w, HashCache(None))
    assert text.splitlines()[1].split("\t")[:2] == ["w.pth", "3"]


def test_run_block_names_config_overlays_and_commit(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "o.yaml").write_text("data: {crop_size: 64}\n")
    block = provenance.run_block("o", ["o.yaml"], tmp_path)
    assert block["config"] == "o"
    assert block["overlays"] == [
        {"path": "o.yaml", "sha256": provenance.file_sha256(tmp_path / "o.yaml")}
    ]
    assert block["git_commit"] is None and block["git_dirty"] is None  # no commit yet
    with pytest.raises(FileNotFoundError, match="overlay missing.yaml does not exist"):
        provenance.run_block("x", ["missing.yaml"], tmp_path)


def test_manifests_of_another_configuration_are_removed(tmp_path):
    w = tmp_path / "w.pth"
    w.write_bytes(b"abc")
    features = {"backbones": [{"id": "a", "weights": str(w)}]}
    out = tmp_path / "inputs"
    first = input_manifests({"features": features}, out_dir=out, cache_path=None)
    assert [Path(p).name for p in first.values()] == ["features.backbones.a.weights.tsv"]
    input_manifests({"data": {"source": "skimage"}}, out_dir=out, cache_path=None)
    assert sorted(p.name for p in out.iterdir()) == ["data.source.tsv"]


@pytest.mark.slow
def test_sparse_resume_fingerprint_carries_the_code_hash(tmp_path):
    """The sparse trainer's checkpoint key holds module_code of its closure (one mechanism)."""
    import numpy as np
    from test_sparse_techniques import tiny_cfg

    from reconlab.checkpoint import load_checkpoint
    from reconlab.sparse.train import train_cell

    cfg = tiny_cfg()
    cfg["train"]["checkpoint_every"] = 2
    fields = np.random.default_rng(0).random((6, 32, 32), dtype=np.float32)
    ckpt = tmp_path / "last.pt"
    train_cell(cfg, fields, seed=0, checkpoint=ckpt)
    code = provenance.module_code("reconlab.sparse.train")
    assert load_checkpoint(ckpt, cfg | {"seed": 0, "code": code}) is not None
    assert load_checkpoint(ckpt, cfg | {"seed": 0, "code": "edited"}) is None
