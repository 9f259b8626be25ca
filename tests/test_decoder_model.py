"""TinyDecoder and the decoder registry: shapes, output range, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from reconlab.decoder.model import DECODERS, NORMS, UPSAMPLE_MODES, create_decoder


@pytest.mark.parametrize("name", sorted(DECODERS))
@pytest.mark.parametrize("patch", [14, 16])
def test_every_decoder_maps_grid_to_image_in_unit_range(name, patch):
    torch.manual_seed(0)
    model = create_decoder(name, in_channels=24, patch_size=patch, width=16)
    x = torch.randn(2, 24, 3, 5) * 10  # large inputs must still give [0, 1]
    out = model(x)
    assert out.rgb.shape == (2, 3, 3 * patch, 5 * patch)
    assert out.logits.shape == out.rgb.shape
    assert torch.isfinite(out.rgb).all()
    assert out.rgb.min() >= 0 and out.rgb.max() <= 1
    out.rgb.mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("upsample", UPSAMPLE_MODES)
def test_tiny_decoder_options(norm, upsample):
    model = create_decoder("tiny", 8, 16, width=16, depth=1, norm=norm, upsample=upsample)
    out = model(torch.randn(2, 8, 2, 2))
    assert out.rgb.shape == (2, 3, 32, 32)


def test_channels_last_bf16_autocast_matches_fp32_closely():
    torch.manual_seed(0)
    model = create_decoder("tiny", 16, 14, width=16).eval()
    x = torch.randn(2, 16, 2, 2)
    ref = model(x).rgb
    fast = model.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast(x.contiguous(memory_format=torch.channels_last)).rgb
    assert out.shape == ref.shape
    assert (out.float() - ref).abs().max() < 0.05


def test_width_halves_per_stage_with_floor():
    model = create_decoder("tiny", 8, 16, width=64, min_width=16)
    convs = [m for m in model.body if hasattr(m, "__getitem__")]
    widths = [block[0].out_channels for block in convs]
    assert widths[0] == 32 and widths[-1] == 16 and min(widths) == 16


def test_unknown_names_are_clear_errors():
    with pytest.raises(
        ValueError, match=r"decoder.arch: 'unet' is not one of \['linear', 'tiny'\]"
    ):
        create_decoder("unet", 8, 16)
    with pytest.raises(ValueError, match="decoder.norm"):
        create_decoder("tiny", 8, 16, norm="layer")
    with pytest.raises(ValueError, match="decoder.upsample"):
        create_decoder("tiny", 8, 16, upsample="bicubic")
