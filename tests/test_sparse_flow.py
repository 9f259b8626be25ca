"""Conditional flow matching: the loss and the ODE sampler on cases with known answers."""

import pytest
import torch
from torch import nn

from reconlab.sparse.flow import flow_matching_loss, predict, sample_values, straight_path
from reconlab.sparse.models import ModelOutput
from reconlab.sparse.task import Batch


class Oracle(nn.Module):
    """Knows the true values x1; outputs them (data) or the exact straight-path velocity."""

    def __init__(self, x1: torch.Tensor, prediction: str):
        super().__init__()
        self.x1, self.prediction = x1, prediction

    def forward(self, obs_xy, obs_val, query_xy, x_t, t, cond=None):
        if self.prediction == "data":
            return ModelOutput(self.x1)
        return ModelOutput((self.x1 - x_t) / (1 - t[:, None]).clamp_min(1e-6))


class Zero(nn.Module):
    def forward(self, obs_xy, obs_val, query_xy, x_t, t, cond=None):
        return ModelOutput(torch.zeros_like(x_t))


def _batch(b=4, q=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.rand(b, 51, 2, generator=g),
        torch.rand(b, 51, generator=g),
        torch.rand(b, q, 2, generator=g),
        torch.rand(b, q, generator=g),
    )


def test_straight_path_endpoints_and_velocity():
    x0, x1 = torch.zeros(2, 3), torch.ones(2, 3)
    xt, u = straight_path(x0, x1, torch.tensor([0.0, 0.25]))
    assert torch.allclose(xt[0], x0[0]) and torch.allclose(xt[1], torch.full((3,), 0.25))
    assert torch.equal(u, x1 - x0)


@pytest.mark.parametrize("prediction", ["velocity", "data"])
def test_oracle_has_zero_loss(prediction):
    batch = _batch()
    g = torch.Generator().manual_seed(1)
    terms = flow_matching_loss(
        Oracle(batch.query_val, prediction), batch, {}, g, prediction=prediction
    )
    assert terms.flow.item() < 1e-8


def test_zero_velocity_loss_is_second_moment_of_target():
    # v = 0  =>  loss = E[(x1 - x0)^2] = E[x1^2] + 1 for x0 ~ N(0, 1) independent of x1
    batch = _batch(b=64, q=512)
    g = torch.Generator().manual_seed(2)
    loss = flow_matching_loss(Zero(), batch, {}, g).flow.item()
    expected = batch.query_val.pow(2).mean().item() + 1
    assert loss == pytest.approx(expected, rel=0.02)


def test_known_case_loss_value_exactly():
    # one value, fixed noise and time: v = 0, x1 = 0.5 -> loss = (0.5 - x0)^2
    batch = Batch(
        torch.zeros(1, 1, 2), torch.zeros(1, 1), torch.zeros(1, 1, 2), torch.tensor([[0.5]])
    )
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn((1, 1), generator=torch.Generator().manual_seed(5))
    loss = flow_matching_loss(Zero(), batch, {}, g).flow
    assert loss.item() == pytest.approx((0.5 - x0.item()) ** 2, rel=1e-6)


class Constant(nn.Module):
    """The exact velocity of the straight path from a known x0: constant in time."""

    def __init__(self, x0, x1):
        super().__init__()
        self.v = x1 - x0

    def forward(self, obs_xy, obs_val, query_xy, x_t, t, cond=None):
        return ModelOutput(self.v)


@pytest.mark.parametrize("method", ["euler", "heun", "rk4", "dopri5"])
def test_ode_with_exact_velocity_lands_on_target(method):
    batch = _batch()
    x0, x1 = torch.randn(4, 64), batch.query_val
    out = sample_values(Constant(x0, x1), batch, steps=3, method=method, x0=x0)
    assert torch.allclose(out, x1, atol=1e-4)


@pytest.mark.parametrize("method", ["euler", "heun"])  # rk4 evaluates the stiff end t = 1
def test_ode_with_exact_clean_estimate_lands_on_target(method):
    batch = _batch()
    out = sample_values(Oracle(batch.query_val, "data"), batch, 10, method, prediction="data")
    assert torch.allclose(out, batch.query_val, atol=1e-3)


def test_predict_velocity_and_data_agree_on_clean_estimate():
    batch = _batch()
    x_t, t = torch.randn(4, 64), torch.full((4,), 0.3)
    v, x1 = predict(Oracle(batch.query_val, "velocity"), batch, x_t, t, None, "velocity")
    assert torch.allclose(x1, batch.query_val, atol=1e-5)
    with pytest.raises(ValueError, match="sparse.model.prediction"):
        predict(Zero(), batch, x_t, t, None, "noise")


def test_unknown_solver_is_a_clear_error():
    with pytest.raises(ValueError, match="sparse.sampler.method"):
        sample_values(Zero(), _batch(), 2, "leapfrog")
