"""cache_features: a real cache from real images, resume after a failure, corrupted shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from reconlab.cli import main
from reconlab.config import validate_params
from reconlab.features.backbones import load_backbone
from reconlab.features.build import _inputs_hash, cache_features, fill_shards, plan_shards
from reconlab.features.cache import FeatureCache, shard_name, write_shard
from reconlab.features.extract import FeatureExtractor
from reconlab.features.images import load_image_tensor
from reconlab.features.summary import features_metrics, summarize_caches
from reconlab.io import sha256_bytes, sha256_file, write_csv, write_json
from reconlab.report.context import ReportContext
from reconlab.report.sections import features as report_section
from reconlab.runtime import machine

DINOV2 = "vit_small_patch14_dinov2.lvd142m"
TINY = {"depth": 2}
SPLIT_SIZES = {"train": 5, "val": 2, "test": 1}


@pytest.fixture()
def prepared(tmp_path):
    """A prepared-data folder: 8 random 30x40 PNGs and their manifest."""
    root = tmp_path / "prepared"
    rng = np.random.default_rng(0)
    rows = []
    for split, n in SPLIT_SIZES.items():
        for i in range(n):
            rel = f"images/{split}/img_{i:03d}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            rgb = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(root / rel)
            rows.append(
                {
                    "file": rel,
                    "source": "test",
                    "split": split,
                    "sha256": sha256_file(root / rel),
                    "width": 40,
                    "height": 30,
                }
            )
    write_csv(root / "manifest.csv", rows, ["file", "source", "split", "sha256", "width", "height"])
    return root


def section(**overrides):
    cfg = {
        "dtype": "fp32",
        "precision": "fp32",
        "device": "cpu",
        "batch_size": 3,  # batches straddle shards
        "shard_size": 2,
        "backbones": [
            {
                "id": "v2",
                "model": DINOV2,
                "weights": "random",
                "image_size": [28, 42],
                "layers": [0],
            }
        ],
    }
    cfg.update(overrides)
    return validate_params({"features": cfg})["features"]


def test_cache_holds_the_backbone_tokens_of_every_image_in_manifest_order(prepared, tmp_path):
    out = tmp_path / "features" / "v2"
    index = cache_features(section(), "v2", prepared, out, progress_bar=False, **TINY)
    assert not (tmp_path / "features" / ".v2.partial").exists()
    cache = FeatureCache.open(out, expect={"model": DINOV2, "dtype": "fp32", "grid": [2, 3]})
    assert cache.index == index
    assert cache.weights_id == "random:0" and cache.untrained
    assert index["num_prefix_tokens"] == 1 and index["image_size"] == [28, 42]
    train = cache.split("train")
    assert [len(cache.split(s)) for s in SPLIT_SIZES] == [5, 2, 1]
    assert [s["count"] for s in train.shards] == [2, 2, 1]
    assert train.files == [f"images/train/img_{i:03d}.png" for i in range(5)]
    # Same tokens as running the backbone directly on load_image_tensor's pixels.
    bb = load_backbone(DINOV2, "random", [28, 42], layers=[0], **TINY)
    images = torch.stack([load_image_tensor(prepared / f, [28, 42]) for f in train.files])
    direct = FeatureExtractor(bb, "cpu", "fp32")(images)
    assert torch.allclose(train.patch, direct.patch, atol=1e-4)
    assert torch.allclose(train.cls, direct.cls, atol=1e-4)
    assert torch.allclose(train.tensor("patch_layer0"), direct.layers[0], atol=1e-4)

    # The summary the report and DVC read, and the report section with its untrained badge.
    rows = summarize_caches([out])
    assert rows[0]["count"] == SPLIT_SIZES and rows[0]["weights_id"] == "random:0"
    assert features_metrics(rows) == {
        "v2": {"untrained": True, "tokens_per_image": 6, "embed_dim": 384,
               "count_train": 5, "count_val": 2, "count_test": 1},
        # the cache was computed in fp32 (asked for in this test's config), recorded as such
        "compute": {"device": "cpu", "precision": "fp32",
                    "cpu_capability": machine().cpu_class, "torch": torch.__version__},
    }  # fmt: skip
    write_json(tmp_path / "results/features/summary.json", {"backbones": rows})
    html = report_section.render(ReportContext(tmp_path / "results", tmp_path / "metrics"))
    assert "untrained backbone (random:0)" in html and '<td class="text">2x3</td>' in html


def break_crop(prepared, rel: str, data: bytes):
    """Overwrite crop ``rel`` with ``data`` and list those bytes in the manifest (as if it broke
    when prepared): the run passes the manifest check and dies decoding it. Returns an undo."""
    path, manifest = prepared / rel, prepared / "manifest.csv"
    good, listed = path.read_bytes(), manifest.read_text()
    path.write_bytes(data)
    manifest.write_text(listed.replace(sha256_bytes(good), sha256_bytes(data)))

    def undo() -> None:
        path.write_bytes(good)
        manifest.write_text(listed)

    return undo


@pytest.mark.slow  # four cache builds; plan_shards / fill_shards are fast-tested
def test_resume_after_failure_reuses_done_shards_and_recomputes_corrupt_ones(
    prepared, tmp_path, caplog
):
    out = tmp_path / "features" / "v2"
    work = tmp_path / "features" / ".v2.partial"
    bad = prepared / "images/train/img_003.png"  # in train shard 1
    good_bytes = bad.read_bytes()
    undo = break_crop(prepared, "images/train/img_003.png", good_bytes[:50])  # dies after shard 0
    with pytest.raises(ValueError, match="img_003.png"):
        cache_features(section(), "v2", prepared, out, progress_bar=False, **TINY)
    assert not out.exists()  # nothing that looks like a finished cache
    shard0 = work / "train" / "shard_00000.safetensors"
    assert shard0.exists() and not (work / "train" / "shard_00001.safetensors").exists()
    stat0 = shard0.stat()

    undo()
    stray = work / "train" / ".shard_00001.safetensors.x1y2.tmp"  # as a kill -9 mid-write leaves
    stray.write_bytes(b"\0" * 100)
    cache_features(section(), "v2", prepared, out, progress_bar=False, **TINY)
    assert not list(out.rglob("*.tmp"))
    reused = out / "train" / "shard_00000.safetensors"
    assert reused.stat().st_ino == stat0.st_ino  # the same file, moved into place, not rewritten
    FeatureCache.open(out).split("train").verify()
    fresh = cache_features(
        section(), "v2", prepared, tmp_path / "fresh", progress_bar=False, **TINY
    )
    resumed = FeatureCache.open(out)
    assert resumed.index["splits"]["train"]["files"] == fresh["splits"]["train"]["files"]
    assert torch.allclose(
        resumed.split("train").patch,
        FeatureCache.open(tmp_path / "fresh").split("train").patch,
        atol=1e-4,
    )

    # A corrupted shard left by a killed run is detected and recomputed, never reused.
    undo = break_crop(prepared, "images/train/img_003.png", good_bytes[:50])
    with pytest.raises(ValueError):
        cache_features(section(), "v2", prepared, out, progress_bar=False, **TINY)
    assert out.exists()  # the earlier good cache survives a failed rerun
    data = bytearray(shard0.read_bytes())
    data[-3] ^= 0xFF
    shard0.write_bytes(bytes(data))
    undo()
    caplog.clear()
    cache_features(section(), "v2", prepared, out, progress_bar=False, **TINY)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [
        f"{work}/train/shard_00000.safetensors: sha256 does not match the index; recomputing"
    ]
    FeatureCache.open(out).split("train").verify()


def test_changed_settings_never_reuse_old_shards(prepared, tmp_path):
    out = tmp_path / "features" / "v2"
    undo = break_crop(prepared, "images/val/img_001.png", b"not an image")
    with pytest.raises(ValueError):
        cache_features(section(), "v2", prepared, out, progress_bar=False, **TINY)
    undo()
    index = cache_features(section(dtype="bf16"), "v2", prepared, out, progress_bar=False, **TINY)
    cache = FeatureCache.open(out, expect={"dtype": "bf16"})
    assert index["dtype"] == "bf16" and cache.split("train").patch.dtype == torch.bfloat16


def test_cli_errors_are_one_line_naming_the_key(prepared, tmp_path, capsys):
    params = json.dumps(section())
    args = ["cache-features", "--params", params, "--prepared", str(prepared), "--quiet"]
    assert main([*args, "--backbone", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "reconlab cache-features: error: features.backbones: no backbone with id 'nope'; known: ['v2']"
    )
    wrong = section(
        backbones=[{"id": "v2", "model": "vit_small_patch14_dinov", "weights": "random"}]
    )
    assert (
        main(
            [
                "cache-features",
                "--params",
                json.dumps(wrong),
                "--backbone",
                "v2",
                "--prepared",
                str(prepared),
                "--quiet",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert (
        "features.backbones[0].model: 'vit_small_patch14_dinov' is not a timm model; did you mean"
        in err
    )
    assert "\n" not in err


HEADER = {"dtype": "fp32", "grid": [2, 2], "embed_dim": 3, "layers": [], "num_prefix_tokens": 1}


def test_fill_shards_cuts_batches_that_straddle_shards():
    rows = [{"file": f"f{i}"} for i in range(7)]
    pending = [(0, rows[:3]), (1, rows[3:6]), (2, rows[6:])]
    batches = (
        {"cls": torch.full((n, 3), float(start)), "patch": torch.zeros(n, 2, 2, 3)}
        for start, n in ((0, 2), (2, 2), (4, 3))  # batches of 2, 2, 3 rows
    )
    shards = list(fill_shards(batches, pending, HEADER, torch.float32))
    assert [(k, len(chunk)) for k, chunk, _ in shards] == [(0, 3), (1, 3), (2, 1)]
    cls = torch.cat([t["cls"][:, 0] for _, _, t in shards])
    assert cls.tolist() == [0, 0, 2, 2, 4, 4, 4]  # every row once, in order
    assert shards[1][2]["patch"].shape == (3, 2, 2, 3)


def test_plan_shards_reuses_only_intact_shards_of_the_same_images(tmp_path, caplog):
    rows = [{"file": f"f{i}", "sha256": str(i)} for i in range(5)]
    work = tmp_path / "work"
    tensors = {"cls": torch.zeros(2, 3), "patch": torch.zeros(2, 2, 2, 3)}
    done0 = write_shard(work / "train" / shard_name(0), tensors)
    done1 = write_shard(work / "train" / shard_name(1), tensors)
    first = plan_shards({"train": rows}, {"shards": {}}, work, HEADER, 2)["train"]
    assert [(k, len(c), ok) for k, c, ok in first] == [(0, 2, False), (1, 2, False), (2, 1, False)]

    progress = {
        "shards": {
            "train": {
                shard_name(0): {**done0, "inputs": _inputs_hash(rows[0:2])},
                shard_name(1): {**done1, "inputs": _inputs_hash(rows[0:2])},  # other images
            }
        }
    }
    path0 = work / "train" / shard_name(0)
    plan = plan_shards({"train": rows}, progress, work, HEADER, 2)["train"]
    assert [ok for _, _, ok in plan] == [True, False, False]
    data = bytearray(path0.read_bytes())
    data[-3] ^= 0xFF
    path0.write_bytes(bytes(data))
    caplog.clear()
    plan = plan_shards({"train": rows}, progress, work, HEADER, 2)["train"]
    assert [ok for _, _, ok in plan] == [False, False, False]
    assert [r.getMessage() for r in caplog.records] == [
        f"{path0}: sha256 does not match the index; recomputing"
    ]
