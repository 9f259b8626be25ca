"""Training crops from source photos: every photo each step, scales, flips, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reconlab.tokenizer.photos import limit_side, sample_photo_crops


def solid_photos(n: int, h: int = 40, w: int = 56) -> list[torch.Tensor]:
    """``n`` photos of one distinct grey level each, so a crop tells which photo it came from."""
    return [torch.full((3, h, w), 20 * (i + 1), dtype=torch.uint8) for i in range(n)]


def test_every_photo_is_in_every_batch_of_at_least_as_many_crops():
    photos = solid_photos(3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        x = sample_photo_crops(photos, 4, 16, (0.5, 1.0), gen)
        assert x.shape == (4, 3, 16, 16)
        levels = {round(float(v) * 255) for v in x.mean(dim=(1, 2, 3))}
        assert levels >= {20, 40, 60}


def test_scale_one_crops_native_pixels_and_flips_about_half():
    ramp = torch.arange(64, dtype=torch.uint8).repeat(3, 48, 1)  # (3, 48, 64): value = column
    gen = torch.Generator().manual_seed(1)
    x = sample_photo_crops([ramp], 200, 16, (1.0, 1.0), gen)
    steps = (x[:, 0, 0, 1:] - x[:, 0, 0, :-1]) * 255
    rising = torch.isclose(steps, torch.ones_like(steps)).all(dim=1)
    falling = torch.isclose(steps, -torch.ones_like(steps)).all(dim=1)
    assert bool((rising | falling).all())  # native pixels: neighbours differ by exactly one level
    assert 60 < int(falling.sum()) < 140


def test_small_scale_sees_a_larger_window_resized_down():
    ramp = torch.arange(64, dtype=torch.uint8).repeat(3, 64, 1)
    x = sample_photo_crops([ramp], 8, 16, (0.25, 0.25), torch.Generator().manual_seed(0))
    span = (x[:, 0, 0, :].amax(dim=1) - x[:, 0, 0, :].amin(dim=1)) * 255
    assert bool((span > 50).all())  # a 64 px window resized to 16 px spans the whole ramp


def test_same_generator_state_draws_the_same_batch():
    photos = solid_photos(2, 30, 90)
    a = sample_photo_crops(photos, 5, 16, (0.3, 2.0), torch.Generator().manual_seed(7))
    b = sample_photo_crops(photos, 5, 16, (0.3, 2.0), torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and float(a.min()) >= 0 and float(a.max()) <= 1


def test_bad_scale_names_the_key():
    with pytest.raises(ValueError, match="tokenizer.train.scale"):
        sample_photo_crops(solid_photos(1), 2, 16, (1.0, 0.5), torch.Generator())


def test_limit_side_downscales_only_large_photos():
    rgb = np.zeros((100, 300, 3), np.uint8)
    assert limit_side(rgb, 150).shape == (50, 150, 3)
    assert limit_side(rgb, 400) is rgb and limit_side(rgb, None) is rgb
