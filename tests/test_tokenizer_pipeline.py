"""Tokenizer train/evaluate/JPEG/summary on real (tiny) prepared crops; resume; perceptual loss."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from reconlab.config import DataConfig, TokenizerConfig, validate_params
from reconlab.data.images import prepare_images
from reconlab.io import read_csv, read_json
from reconlab.tokenizer.evaluate import evaluate_tokenizer, jpeg_baseline
from reconlab.tokenizer.losses import build_perceptual, tokenizer_loss
from reconlab.tokenizer.model import build_tokenizer
from reconlab.tokenizer.summary import summarize_tokenizer
from reconlab.tokenizer.train import load_model, train_tokenizer

TINY = {
    "variants": ["f4x4-K16"],
    "model": {"base_channels": 8, "max_channels": 16},
    "train": {"steps": 4, "batch_size": 2, "crop": 32, "log_every": 2, "checkpoint_every": 100},
    "eval": {
        "resolutions": [32, 64],
        "reference_resolution": 64,
        "tile": 32,
        "overlap": 16,
        "tile_above": 32,
        # FID/FDD networks are exercised in test_tokenizer_frechet.py and the workflow test
        "frechet": {"inception_weights": "none", "backbone": None},
        "native_tiling": {"tile": 512, "overlap": 64, "tile_above": 768},
    },
    "jpeg": {"qualities": [5, 50, 90]},
}


def tiny_config(**overrides) -> TokenizerConfig:
    section = validate_params({"tokenizer": json.loads(json.dumps({**TINY, **overrides}))})[
        "tokenizer"
    ]
    return TokenizerConfig(**section)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare_images(DataConfig(crop_size=32, crops_per_image=2, resize_shorter=48), out)
    return out


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    log = train_tokenizer(
        "f4x4-K16", tiny_config(), prepared / "images", out / "f4x4-K16", out / "ck.pt"
    )
    return out, log


def test_training_writes_model_and_a_log_of_every_loss_component(trained):
    out, log = trained
    assert (out / "f4x4-K16" / "model.safetensors").exists()
    assert not (out / "ck.pt").exists()  # the checkpoint is removed once the outputs exist
    rows = read_csv(out / "f4x4-K16" / "train_log.csv")
    assert [int(r["step"]) for r in rows] == [2, 4]
    for key in (
        "reconstruction",
        "perceptual",
        "commitment",
        "orthogonal",
        "batch_usage",
        "val_psnr",
    ):
        assert key in rows[0]
    assert log["metadata"]["perceptual"].startswith("disabled: ")
    assert log["metadata"]["codebook_loss"].startswith("not used: codebook updated by EMA")
    assert 0 < log["final"]["val"]["codebook_usage"] <= 100


@pytest.mark.slow  # two trainings; the shared checkpoint resume is fast-tested in test_decoder_train
def test_resumed_training_ends_where_an_uninterrupted_run_ends(prepared, trained, tmp_path):
    out, log = trained
    cfg = tiny_config()
    ck = tmp_path / "ck.pt"
    assert (
        train_tokenizer("f4x4-K16", cfg, prepared / "images", tmp_path / "m", ck, stop_after=2)
        is None
    )
    assert ck.exists() and not (tmp_path / "m" / "model.safetensors").exists()
    resumed = train_tokenizer("f4x4-K16", cfg, prepared / "images", tmp_path / "m", ck)
    assert resumed["metadata"]["resumed_from_step"] == 2
    a = load_file(out / "f4x4-K16" / "model.safetensors")
    b = load_file(tmp_path / "m" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in log["rows"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in resumed["rows"]]


def test_evaluation_jpeg_and_summary(prepared, trained, tmp_path):
    out, _ = trained
    cfg = tiny_config()
    model_dir = out / "f4x4-K16"
    results = evaluate_tokenizer(
        model_dir / "model.safetensors", cfg, prepared / "manifest.csv", "skimage", model_dir
    )
    assert [r["resolution"] for r in results] == [32, 64]
    r64 = read_json(model_dir / "eval_64.json")
    for key in (
        "psnr",
        "ssim",
        "bpp",
        "codebook_usage",
        "perplexity",
        "encode_img_s",
        "decode_img_s",
        "peak_mem_mb",
    ):
        assert isinstance(r64[key], float), key
    assert r64["bpp"] == pytest.approx((64 // 4) ** 2 * 4 / 64**2)  # tokens * log2(16) / pixels
    assert r64["tiled"] is True and read_json(model_dir / "eval_32.json")["tiled"] is False
    assert r64["fid"] == "not computed: tokenizer.eval.frechet.inception_weights is 'none'"
    assert r64["fdd"] == "not computed: tokenizer.eval.frechet.backbone is null"
    assert r64["upsampled"] == []  # every bundled photo is larger than 64 px
    assert read_json(model_dir / "test_split.json")["n_images"] > 0
    native = read_json(model_dir / "eval_native.json")  # the test photos at their own size
    assert native["n_images"] == len(native["images"]) > 0 and native["resolution"] == "native"
    assert all(i["height"] * i["width"] > 64 * 64 for i in native["images"])
    assert [i["tiled"] for i in native["images"]] == [
        max(i["height"], i["width"]) > 768 for i in native["images"]
    ]

    jpeg_csv = tmp_path / "jpeg.csv"
    rows = jpeg_baseline(cfg, prepared / "manifest.csv", "skimage", jpeg_csv)
    assert len(rows) == 2 * 3 and {r["resolution"] for r in rows} == {32, 64}

    metrics = tmp_path / "tokenizer.json"
    m = summarize_tokenizer(cfg, out, jpeg_csv, metrics, out)
    assert read_json(metrics) == json.loads(json.dumps(m))
    v = m["variants"]["f4x4-K16"]
    assert v["bpp"] == pytest.approx(0.25) and "beats_jpeg" in v and "codebook_usage_test" in v
    assert 0 < v["codebook_usage_train"] <= 100
    assert v["fid"] == r64["fid"] and v["fdd"] == r64["fdd"]  # not computed here, with the reason
    assert (out / "psnr_vs_bpp.png").stat().st_size > 0
    assert (out / "resolution_scaling.png").stat().st_size > 0
    assert len(read_csv(out / "summary.csv")) == 2
    assert len(read_csv(out / "native.csv")) == native["n_images"]
    assert v["native_images"] == native["n_images"] and v["bpp_native"] > 0


def test_fsq_variant_trains_and_evaluates_with_its_implicit_codebook(prepared, tmp_path):
    cfg = tiny_config(variants=["f4-FSQ3.3.3"], eval={**TINY["eval"], "resolutions": [64]})
    out = tmp_path / "f4-FSQ3.3.3"
    train_tokenizer("f4-FSQ3.3.3", cfg, prepared / "images", out, tmp_path / "ck.pt")
    (r64,) = evaluate_tokenizer(
        out / "model.safetensors", cfg, prepared / "manifest.csv", "skimage", out
    )
    # 3 x 3 x 3 = 27 implicit codes per token, one token per 4 x 4 pixels
    assert r64["bpp"] == pytest.approx(np.log2(27) / 16)
    assert r64["codebook_size"] == 27 and 0 < r64["codebook_usage"] <= 100
    assert isinstance(r64["psnr"], float) and isinstance(r64["ssim"], float)
    assert read_json(out / "eval_native.json")["n_images"] > 0
    jpeg_csv = tmp_path / "jpeg.csv"
    jpeg_baseline(cfg, prepared / "manifest.csv", "skimage", jpeg_csv)
    m = summarize_tokenizer(cfg, tmp_path, jpeg_csv, tmp_path / "tokenizer.json", tmp_path)
    assert list(m["variants"]) == ["f4-FSQ3_3_3"]  # dot-free: `dvc metrics diff` splits on dots


def test_load_model_rebuilds_the_trained_network(trained):
    out, _ = trained
    model = load_model(out / "f4x4-K16" / "model.safetensors")
    assert model.spec.name == "f4x4-K16" and not model.training
    with pytest.raises(FileNotFoundError, match="train_tokenizer"):
        load_model(out / "missing.safetensors")


def test_perceptual_loss_needs_real_weights(tmp_path):
    net, note = build_perceptual("vgg16", "none")
    assert net is None and note.startswith("disabled: ")
    with pytest.raises(ValueError, match="'random' is not allowed"):
        build_perceptual("vgg16", "random")
    with pytest.raises(FileNotFoundError, match="tokenizer.perceptual.weights"):
        build_perceptual("vgg16", str(tmp_path / "nope.pth"))


def test_perceptual_loss_from_a_local_vgg16_file(tmp_path):
    from torchvision.models import vgg16

    weights = tmp_path / "vgg16.pth"  # a stand-in for a downloaded file, same format
    torch.save(
        {f"features.{k}": v for k, v in vgg16(weights=None).features.state_dict().items()}, weights
    )
    net, note = build_perceptual("vgg16", str(weights))
    assert net is not None and str(weights) in note
    torch.manual_seed(0)
    model = build_tokenizer("f4x4-K16", base_channels=8, max_channels=16)
    x = torch.rand(1, 3, 32, 32)
    w = dataclasses.asdict(tiny_config())["loss"]["weights"]
    terms = tokenizer_loss(model(x), x, w, "mse", net)
    assert terms.perceptual > 0
    terms.total.backward()
    assert model.decoder.net[-1].weight.grad.abs().sum() > 0
