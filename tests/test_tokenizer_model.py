"""Tokenizer variants: name grammar, shapes for every variant, bpp arithmetic, fp32 quantisation."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from reconlab.config import PROJECT_ROOT
from reconlab.tokenizer.model import REGISTERED_VARIANTS, build_tokenizer, parse_variant


def _params_variants() -> list[str]:
    names = set(REGISTERED_VARIANTS)
    for f in ("params.yaml", "config/smoke.yaml", "config/gpu.yaml"):
        path = PROJECT_ROOT / f
        if path.exists():
            section = (yaml.safe_load(path.read_text()) or {}).get("tokenizer", {})
            names.update(section.get("variants", []))
    return sorted(names)


ALL_VARIANTS = _params_variants()


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_every_variant_round_trips_with_the_right_shapes(name):
    torch.manual_seed(0)
    spec = parse_variant(name)
    model = build_tokenizer(name, base_channels=8, max_channels=16)
    x = torch.rand(2, 3, 64, 48)
    out = model(x)
    h, w = 64 // spec.factor, 48 // spec.factor
    assert out.recon.shape == x.shape
    assert out.indices.shape == (2, h, w)
    assert out.indices.dtype == torch.int64
    assert 0 <= int(out.indices.min()) and int(out.indices.max()) < spec.codebook_size
    assert torch.isfinite(out.recon).all()
    assert torch.isfinite(out.commitment) and torch.isfinite(out.orthogonal)
    model.eval()
    with torch.no_grad():
        q = model.quantize(model.encode(x))
        # decoding token ids reproduces decoding the quantized codes
        assert torch.allclose(model.decode_indices(q.indices), model.decode(q.quantized), atol=1e-5)


def test_variant_names_parse_and_bad_names_fail_with_the_key():
    s = parse_variant("f8x16-K1024")
    assert (s.factor, s.latent_dim, s.codebook_size, s.quantizer) == (8, 16, 1024, "vq")
    f = parse_variant("f8-FSQ8.5.5.5")
    assert (f.factor, f.latent_dim, f.codebook_size, f.levels) == (8, 4, 1000, (8, 5, 5, 5))
    for bad in ("f3x16-K1024", "f8x16", "vq-f8", "f8-FSQ2.5", "f8x16-K1"):
        with pytest.raises(ValueError, match="tokenizer.variants"):
            parse_variant(bad)


def test_bits_per_pixel_is_tokens_times_log2_k_over_pixels():
    assert parse_variant("f8x16-K1024").bpp(256, 256) == pytest.approx(32 * 32 * 10 / 256**2)
    assert parse_variant("f8x16-K1024").bpp(256, 256) == pytest.approx(10 / 64)
    assert parse_variant("f16x32-K1024").bpp(2048, 2048) == pytest.approx(10 / 256)
    assert parse_variant("f4x8-K256").bpp(512, 512) == pytest.approx(8 / 16)
    assert parse_variant("f8-FSQ8.5.5.5").bpp(64, 64) == pytest.approx(math.log2(1000) / 64)
    # non-multiple sizes are padded up to whole tokens
    assert parse_variant("f8x16-K1024").bpp(12, 8) == pytest.approx(2 * 1 * 10 / 96)


def test_quantisation_stays_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    model = build_tokenizer("f8x16-K1024", base_channels=8, max_channels=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = model.encode(torch.rand(1, 3, 32, 32))
        q = model.quantize(z)
    assert z.dtype == torch.bfloat16  # the encoder ran in bf16 ...
    assert q.quantized.dtype == torch.float32  # ... the quantizer in fp32


def test_image_size_must_be_a_multiple_of_the_factor():
    model = build_tokenizer("f8x16-K1024", base_channels=8, max_channels=16)
    with pytest.raises(ValueError, match="multiple of f=8"):
        model(torch.rand(1, 3, 30, 32))
