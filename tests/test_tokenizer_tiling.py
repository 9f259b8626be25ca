"""Tiled encode/decode: coverage, blending weights, and tiled == untiled within 0.05 dB."""

from __future__ import annotations

import pytest
import torch

from reconlab.evaluation.image_metrics import per_image_metrics
from reconlab.tokenizer.model import build_tokenizer
from reconlab.tokenizer.tiling import _ramp, tile_starts, tiled_decode, tiled_tokenize


@pytest.mark.parametrize(
    "size,tile,overlap", [(100, 40, 16), (256, 128, 64), (64, 128, 32), (96, 32, 0)]
)
def test_tiles_cover_the_image_and_weights_sum_to_one(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, size) == size
    total = torch.zeros(size)
    for i, s in enumerate(starts):
        w = _ramp(starts, tile, size, i, torch.device("cpu"))
        total[s : s + w.numel()] += w
    assert torch.allclose(total, torch.ones(size))


def test_overlap_must_be_smaller_than_the_tile():
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(512, 128, 128)


def _smooth_image(size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, size // 16, size // 16, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")


@pytest.mark.parametrize("name", ["f8x16-K1024", "f4x8-K256"])
def test_tiled_equals_untiled_within_005_db(name):
    torch.manual_seed(0)
    model = build_tokenizer(name, base_channels=8, max_channels=16)
    x = _smooth_image(192)
    model(x)  # k-means init of the codebook on this image
    model.eval()
    with torch.inference_mode():
        q = model.quantize(model.encode(x))
        full = model.decode(q.quantized)
        indices, quantized = tiled_tokenize(model, x, tile=128, overlap=64)
        tiled = tiled_decode(model, quantized, tile=128, overlap=64)
    assert tiled.shape == full.shape
    assert (indices == q.indices).float().mean() > 0.99
    p_full = float(per_image_metrics(full, x)["psnr"][0])
    p_tiled = float(per_image_metrics(tiled, x)["psnr"][0])
    assert abs(p_full - p_tiled) < 0.05


def test_tiled_decode_without_overlap_shows_seams():
    """The check above has teeth: with no overlap the tiles do differ from the whole image."""
    torch.manual_seed(0)
    model = build_tokenizer("f8x16-K1024", base_channels=8, max_channels=16).eval()
    x = _smooth_image(128)
    with torch.inference_mode():
        q = model.quantize(model.encode(x))
        full = model.decode(q.quantized)
        seams = tiled_decode(model, q.quantized, tile=64, overlap=0)
    assert (full - seams).abs().max() > 1e-3
