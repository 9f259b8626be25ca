"""Streamed training data: fresh fields from the seeded generator, the same batches per seed."""

import numpy as np
import pytest
import torch

from reconlab.config import FieldsConfig, validate_params
from reconlab.data.fields import generate_split
from reconlab.sparse.grid import STORED, cell_config
from reconlab.sparse.task import FieldStream, QuerySampler
from reconlab.sparse.train import make_sampler

FAMILIES = ["sinusoid", "multi_frequency", "radial", "interference", "modulated", "composite"]
INDEX = {"size": 32, "families": FAMILIES, "noise_levels": [0.0], "seed": 0}


def _batches(seed, n=3, state=None):
    s = FieldStream(INDEX, n_observed=51, n_queries=200, seed=seed)
    if state is not None:
        s.generator.set_state(state)
    return [s.sample(8) for _ in range(n)], s


def test_same_seed_gives_the_same_batches_and_another_seed_others():
    a, _ = _batches(5)
    b, _ = _batches(5)
    c, _ = _batches(6)
    for x, y in zip(a, b, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True))
    assert not torch.equal(a[0].obs_val, c[0].obs_val)
    assert not torch.equal(a[0].query_val, a[1].query_val)  # fresh fields every batch


def test_a_resumed_stream_continues_where_it_stopped():
    full, _ = _batches(3, n=3)
    s = FieldStream(INDEX, 51, 200, seed=3)
    s.sample(8)
    state = s.generator.get_state()  # what a checkpoint saves
    resumed, _ = _batches(3, n=2, state=state)
    assert torch.equal(resumed[0].query_val, full[1].query_val)
    assert torch.equal(resumed[1].obs_xy, full[2].obs_xy)


def test_streamed_fields_are_generator_fields_never_the_stored_ones():
    s = FieldStream(INDEX, 51, 200, seed=0)
    fields = torch.cat([s.draw_fields(32) for _ in range(4)])
    assert fields.shape == (128, 1024)
    assert fields.min() >= 0 and fields.max() <= 1
    # min-max normalised noise-free fields reach both ends of [0, 1]
    assert torch.allclose(fields.amin(1), torch.zeros(128), atol=0.05)
    assert torch.allclose(fields.amax(1), torch.ones(128), atol=0.05)
    stored = generate_split(FieldsConfig(per_family={"train": 5, "val": 1, "test": 1}), "train")
    flat = torch.from_numpy(stored["fields"].reshape(len(stored["fields"]), -1))
    assert torch.cdist(fields, flat).min() > 1e-3  # none of them is a stored training field


def test_train_data_picks_the_sampler_and_the_stored_ablation_uses_the_split():
    section = validate_params({"sparse": {}})["sparse"]
    assert section["train"]["data"] == "stream"
    cfg = cell_config(section, "baseline")
    fields = np.zeros((2, 32, 32), np.float32)
    assert isinstance(make_sampler(cfg, fields, 0, INDEX), FieldStream)
    with pytest.raises(ValueError, match="stream needs the fields' index.json"):
        make_sampler(cfg, fields, 0, None)
    stored = cell_config(section, STORED)
    assert stored["train"]["data"] == "stored" and stored["techniques"] == {}
    sampler = make_sampler(stored, fields, 0, INDEX)
    assert type(sampler) is QuerySampler and len(sampler.fields) == 2
