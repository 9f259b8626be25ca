"""Masks and query sampling of the sparse-query task."""

import numpy as np
import pytest
import torch

from reconlab.sparse.task import QuerySampler, eval_masks, pixel_coords


def test_pixel_coords_row_major_centres():
    c = pixel_coords(32)
    assert c.shape == (1024, 2)
    assert torch.allclose(c[0], torch.tensor([0.5 / 32, 0.5 / 32]))
    assert torch.allclose(c[33], torch.tensor([1.5 / 32, 1.5 / 32]))  # row 1, column 1


def test_eval_masks_51_of_1024_seeded_and_distinct():
    m = eval_masks(6, 1024, 51, seed=0, split="test")
    assert m.shape == (6, 51)
    assert all(len(np.unique(row)) == 51 for row in m)
    assert m.min() >= 0 and m.max() < 1024
    np.testing.assert_array_equal(m, eval_masks(6, 1024, 51, seed=0, split="test"))
    assert not np.array_equal(m[0], m[1])  # each field its own mask
    assert not np.array_equal(m, eval_masks(6, 1024, 51, seed=1, split="test"))
    assert not np.array_equal(m, eval_masks(6, 1024, 51, seed=0, split="val"))
    # a field's mask does not depend on how many fields there are
    np.testing.assert_array_equal(m[:3], eval_masks(3, 1024, 51, seed=0, split="test"))


def _fields(n=5):
    return torch.arange(n * 1024, dtype=torch.float32).reshape(n, 1024)


def test_sampler_draws_51_observed_and_200_random_queries():
    fields = _fields()
    s = QuerySampler(fields, n_observed=51, n_queries=200, seed=0)
    b = s.sample(4)
    assert b.obs_xy.shape == (4, 51, 2) and b.obs_val.shape == (4, 51)
    assert b.query_xy.shape == (4, 200, 2) and b.query_val.shape == (4, 200)
    # values are the field values at the sampled coordinates (pixel index from the coordinate)
    idx = (b.query_xy[..., 0] * 32).long() * 32 + (b.query_xy[..., 1] * 32).long()
    field_of = (b.query_val // 1024).long()
    assert torch.equal(b.query_val, (field_of * 1024 + idx).float())
    assert all(len(torch.unique(row)) == 200 for row in idx)
    b2 = s.sample(4)
    assert not torch.equal(b.query_xy, b2.query_xy)  # fresh queries every step
    again = QuerySampler(fields, 51, 200, seed=0).sample(4)
    assert torch.equal(b.query_xy, again.query_xy)  # seeded


def test_fixed_query_ablation_repeats_the_earlier_studys_pixels():
    s = QuerySampler(_fields(), 51, 200, seed=0, fixed_queries=True)
    a, b = s.sample(3), s.sample(3)
    idx = (a.query_xy[..., 0] * 32).long() * 32 + (a.query_xy[..., 1] * 32).long()
    assert torch.equal(idx[0], torch.arange(0, 255, 5))  # 0, 5, ..., 250: rows 0-7 only
    assert torch.equal(a.query_xy, b.query_xy) and torch.equal(a.query_xy[0], a.query_xy[2])
    assert not torch.equal(a.obs_xy, b.obs_xy)  # observed pixels stay random


@pytest.mark.parametrize("n_obs", [1, 51, 300])
def test_sampler_sizes(n_obs):
    b = QuerySampler(_fields(2), n_obs, 17, seed=3).sample(2)
    assert b.obs_val.shape == (2, n_obs) and b.query_val.shape == (2, 17)
