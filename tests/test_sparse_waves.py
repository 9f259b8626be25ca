"""The plane-wave least-squares prior: exact on sums of plane waves, in the model as a base."""

import math

import torch

from reconlab.sparse.task import pixel_coords
from reconlab.sparse.waves import fit_predict, fit_waves, wave_grid, wave_means


def _two_waves(xy):
    y, x = xy[..., 0], xy[..., 1]
    return (
        0.5
        + 0.3 * torch.sin(2 * math.pi * (2.3 * x + 1.1 * y) + 0.4)
        + 0.15 * torch.cos(2 * math.pi * (-0.7 * x + 3.6 * y) + 1.0)
    )


def _psnr(pred, truth):
    return float(10 * torch.log10(1 / ((pred - truth) ** 2).mean()))


def test_two_plane_waves_are_recovered_everywhere_from_51_pixels():
    torch.manual_seed(0)
    every = pixel_coords(32).double()
    truth = _two_waves(every)
    idx = torch.stack([torch.randperm(1024)[:51] for _ in range(3)])
    obs_xy, obs_val = every[idx], truth[idx]
    fit = fit_waves(obs_xy, obs_val, n_waves=3, rings=False)
    means = wave_means(fit, every.expand(3, -1, -1))
    assert means.shape == (3, 1024, 3)
    for b in range(3):
        assert _psnr(means[b, :, 1], truth) >= 60  # the two-wave model is exact
        assert _psnr(means[b, :, 0], truth) < 40  # one wave is not enough
        assert fit.evidence[b, 1] > fit.evidence[b, 0]  # and the evidence says so
    best = fit_predict(obs_xy, obs_val, every.expand(3, -1, -1), n_waves=3)  # rings searched too
    assert _psnr(best[0], truth) >= 60


def test_grid_covers_the_half_plane_once():
    g = wave_grid(1.0, 0.5)
    assert len(g) == 12  # 3 x 5 values minus the zero vector and the two (0, -kx) duplicates
    assert not ((g[:, 0] == 0) & (g[:, 1] <= 0)).any() and (g[:, 2] == 0).all()


def test_constant_observations_give_finite_fits():
    xy = torch.rand(2, 51, 2, generator=torch.Generator().manual_seed(1))
    fit = fit_waves(xy, torch.full((2, 51), 0.3), n_waves=2)
    m = wave_means(fit, xy)
    assert torch.isfinite(m).all() and torch.allclose(m, torch.full_like(m, 0.3), atol=1e-3)


def test_a_circular_wave_is_recovered_and_plane_waves_only_cannot():
    # centre and frequency near a point of the default 9 x 9 x 8 ring grid: the search's basin
    torch.manual_seed(1)
    every = pixel_coords(32).double()
    r = (every - torch.tensor([0.52, 0.47], dtype=torch.float64)).norm(dim=-1)
    truth = 0.5 + 0.5 * torch.sin(2 * math.pi * 3.3 * r + 0.7)
    idx = torch.randperm(1024)[:51][None]
    obs_xy, obs_val = every[idx], truth[idx]
    q = every[None]
    assert _psnr(fit_predict(obs_xy, obs_val, q, n_waves=2)[0], truth) >= 60
    assert _psnr(fit_predict(obs_xy, obs_val, q, n_waves=2, rings=False)[0], truth) < 30
