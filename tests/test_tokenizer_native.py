"""Native-resolution evaluation: own size, no crop, padding cut off, tiling, buckets."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
from PIL import Image

from reconlab.tokenizer.model import build_tokenizer
from reconlab.tokenizer.native import (
    bucket_of,
    evaluate_native,
    native_photos,
    pad_to_multiple,
    reconstruct_native,
)

EVAL = {"tile": 32, "overlap": 16, "tile_above": 48, "native_buckets": [40, 64]}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_tokenizer("f4x4-K16", base_channels=8, max_channels=16).eval()


def test_bucket_labels_by_longer_side():
    edges = [512, 1024]
    assert [bucket_of(s, edges) for s in (100, 512, 513, 1024, 5000)] == [
        "<=512", "<=512", "513-1024", "513-1024", ">1024",
    ]  # fmt: skip


def test_padding_replicates_edges_to_multiples_of_f():
    x = torch.arange(15.0).reshape(1, 1, 3, 5)
    y = pad_to_multiple(x, 4)
    assert y.shape == (1, 1, 4, 8)
    assert torch.equal(y[..., :3, :5], x) and torch.equal(y[..., 3, :5], x[..., 2, :])
    assert pad_to_multiple(torch.zeros(1, 1, 8, 4), 4).shape == (1, 1, 8, 4)


def test_reconstruction_has_the_original_size_and_tiling_matches(model):
    x = torch.rand(1, 3, 61, 70)
    idx, recon = reconstruct_native(model, x, False, 32, 16)
    assert recon.shape == x.shape and idx.shape == (1, 16, 18)
    _, tiled = reconstruct_native(model, x, True, 32, 16)
    assert tiled.shape == x.shape  # tiled == untiled up to seams: tests/test_tokenizer_tiling.py
    assert (tiled - recon).abs().mean() < 0.05


def test_every_image_at_its_own_size_with_bpp_of_every_token_sent(model, tmp_path):
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (37, 30), "b.png": (50, 61)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / name)
    desc, count, photos = native_photos(str(tmp_path), "unused.csv", "skimage")
    assert desc == str(tmp_path) and count == 2
    r = evaluate_native(model, photos, EVAL, torch.device("cpu"), contextlib.nullcontext)
    rows = {row["image"]: row for row in r["images"]}
    assert set(rows) == {"a.png", "b.png"}
    a, b = rows["a.png"], rows["b.png"]
    assert (a["height"], a["width"], b["height"], b["width"]) == (37, 30, 50, 61)
    assert a["bpp"] == pytest.approx(math.ceil(37 / 4) * math.ceil(30 / 4) * 4 / (37 * 30))
    assert (a["tiled"], b["tiled"]) == (False, True)  # longer side 61 > tile_above 48
    assert (a["bucket"], b["bucket"]) == ("<=40", ">64") or b["bucket"] == "41-64"
    assert [x["bucket"] for x in r["buckets"]] == ["<=40", "41-64"]
    assert all(0 < row["ssim"] <= 1 and 0 < row["psnr"] < 100 for row in rows.values())
    assert r["tokens"] == 10 * 8 + 13 * 16 and r["codebook_size"] == 16


def test_empty_folder_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        native_photos(str(tmp_path), "unused.csv", "skimage")
