"""The GP (kriging) prior is solved once per batch: the same samples, a quarter of the solves."""

from __future__ import annotations

import torch

import reconlab.sparse.models as models
from reconlab.sparse.flow import sample_values
from reconlab.sparse.models import SparseTransformer, gp_prior
from reconlab.sparse.task import Batch


def _batch(b=3, q=40, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.rand(b, 51, 2, generator=g),
        torch.rand(b, 51, generator=g),
        torch.rand(b, q, 2, generator=g),
        torch.rand(b, q, generator=g),
    )


def _model() -> SparseTransformer:
    torch.manual_seed(0)
    model = SparseTransformer(width=16, heads=2, enc_layers=1, dec_layers=1, kernel_prior="gp")
    torch.nn.init.normal_(model.head[1].weight, std=0.1)  # not the zero-init: outputs vary with x_t
    return model.eval()


def _sample(model, batch, steps=4):
    with torch.no_grad():
        return sample_values(model, batch, steps, "euler", torch.zeros(batch.query_xy.shape[:2]),
                             prediction="data")  # fmt: skip


def test_sampling_solves_the_prior_once_per_batch_and_gives_the_same_values(monkeypatch):
    batch, other = _batch(seed=0), _batch(seed=1)
    reference_model = _model()
    # the reference recomputes the prior at every forward pass, as before the cache
    monkeypatch.setattr(
        models.QueryTokens, "_gp_once_per_batch",
        lambda self, a, b, c: gp_prior(a, b, c, self.widths),
    )  # fmt: skip
    reference = _sample(reference_model, batch), _sample(reference_model, other)
    monkeypatch.undo()

    solves = []
    real = models.gp_prior
    monkeypatch.setattr(models, "gp_prior", lambda *a: solves.append(1) or real(*a))
    model = _model()
    cached = _sample(model, batch), _sample(model, other)
    assert len(solves) == 2  # 4 Euler steps per batch, one solve per batch
    assert torch.equal(cached[0], reference[0]) and torch.equal(cached[1], reference[1])
    assert not torch.equal(cached[0], cached[1])  # a new batch is not served the old prior
