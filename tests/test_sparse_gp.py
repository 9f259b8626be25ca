"""One exact GP: the GP baseline is the sparse model's kriging prior at its most likely scale."""

from __future__ import annotations

import numpy as np
import torch

from reconlab.sparse.baselines import LENGTH_SCALES, gaussian_process, interpolate_fields
from reconlab.sparse.gp import GP_JITTER, exact_gp, most_likely_mean
from reconlab.sparse.models import gp_prior


def observations(seed=0, n=30, q=40):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1, (n, 2)).astype(np.float32)
    val = (np.sin(5 * xy[:, 0]) * np.cos(3 * xy[:, 1]) * 0.4 + 0.5).astype(np.float32)
    return xy, val, rng.uniform(0, 1, (q, 2)).astype(np.float32)


def test_prior_and_baseline_give_identical_predictions():
    xy, val, q = observations()
    baseline = gaussian_process(xy, val, q)
    prior = gp_prior(
        *(torch.from_numpy(a)[None] for a in (xy, val, q)), torch.tensor(LENGTH_SCALES)
    )
    best = int(prior.evidence[0].argmax())
    np.testing.assert_allclose(baseline, prior.mean[0, :, best].double().numpy(), atol=1e-6)
    # ... and the baseline's scale is the maximum-likelihood one: log p(y) by hand per scale
    y = (val - val.mean()) / val.std(ddof=1)
    lml = []
    for ell in LENGTH_SCALES:
        d2 = ((xy[:, None] - xy[None]) ** 2).sum(-1).astype(np.float64)
        k = np.exp(-d2 / (2 * ell**2)) + GP_JITTER * np.eye(len(y))
        lml.append(-0.5 * y @ np.linalg.solve(k, y) - 0.5 * np.linalg.slogdet(k)[1])
    assert best == int(np.argmax(lml))


def test_most_likely_mean_picks_per_field_and_interpolation_runs_the_same_gp():
    fields = np.stack([np.tile(np.linspace(0, 1, 8), (8, 1)), np.eye(8) * 0.5 + 0.25])
    masks = np.stack([np.arange(0, 63, 3), np.arange(1, 64, 3)])
    pred = interpolate_fields("gp", fields, masks)
    c = (np.arange(8) + 0.5) / 8
    grid = np.stack(np.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)
    flat = fields.reshape(2, -1)
    post = exact_gp(
        torch.from_numpy(np.stack([grid[m] for m in masks])),
        torch.from_numpy(np.stack([f[m] for f, m in zip(flat, masks, strict=True)])),
        torch.from_numpy(np.stack([grid, grid])),
        torch.tensor(LENGTH_SCALES),
    )
    np.testing.assert_allclose(pred.reshape(2, -1), most_likely_mean(post).numpy(), atol=1e-12)
    # a linear ramp observed at every third pixel is recovered closely (worst at the borders)
    err = np.abs(pred[0] - fields[0])
    assert err.mean() < 0.01 and err.max() < 0.1
