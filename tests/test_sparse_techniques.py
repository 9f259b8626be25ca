"""Every technique switch changes the model, the loss or the trained weights; models by registry."""

import copy
import logging

import numpy as np
import pytest
import torch

from reconlab.config import validate_params
from reconlab.sparse.flow import flow_matching_loss
from reconlab.sparse.grid import cell_config, cell_config_json
from reconlab.sparse.models import MODELS, create_model
from reconlab.sparse.task import QuerySampler
from reconlab.sparse.techniques import TECHNIQUES, check_techniques
from reconlab.sparse.train import build_model, train_cell

# Each technique's settings as the schema fills them (the schema is their one source).
DEFAULT_SETTINGS = validate_params({})["sparse"]["techniques"]


def tiny_cfg(techniques=(), backbone="transformer", prediction="velocity"):
    return {
        "mask_seed": 0,
        "observed": 51,
        "queries": 32,
        "fixed_queries": False,
        "eval_splits": ["val"],
        "model": {
            "backbone": backbone,
            "width": 16,
            "heads": 2,
            "enc_layers": 1,
            "dec_layers": 1,
            "distance_bias": True,
            "kernel_prior": "smooth",
            "prediction": prediction,
            "fourier": {"kind": "fixed", "features": 8, "scale": 3.0, "octaves": 4},
        },
        "train": {
            "steps": 4,
            "batch_size": 4,
            "lr": 3e-3,
            "weight_decay": 0.0,
            "checkpoint_every": 0,
            "device": "cpu",
            "precision": "fp32",
        },
        "sampler": {"method": "euler", "steps": 2, "start": "noise"},
        "techniques": {t: dict(DEFAULT_SETTINGS[t]) for t in techniques},
    }


FIELDS = np.random.default_rng(0).random((6, 32, 32), dtype=np.float32)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one intra-op thread avoids thread oversubscription on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_OFF = {}


def _trained_without_techniques():
    if "model" not in _OFF:
        _OFF["model"] = train_cell(tiny_cfg(), FIELDS, seed=0)[0]
    return _OFF["model"]


def _batch(seed=0):
    return QuerySampler(torch.from_numpy(FIELDS.reshape(6, -1)), 51, 32, seed).sample(3)


def _predict(model, techniques):
    b = _batch(9)
    x = torch.zeros(3, 32)
    with torch.no_grad():
        cond = torch.zeros(3, 32) if "self_cond" in techniques else None
        return model(b.obs_xy, b.obs_val, b.query_xy, x, torch.full((3,), 0.5), cond).velocity


def test_registry_lists_eleven_techniques():
    assert len(TECHNIQUES) == 11 and set(DEFAULT_SETTINGS) == set(TECHNIQUES)
    assert check_techniques(["ema", "reflow"]) == ("reflow", "ema")
    with pytest.raises(ValueError, match="unknown technique"):
        check_techniques(["dropout"])


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_switch_changes_trained_model(technique):
    cfg_on = tiny_cfg([technique])
    if technique == "reflow":
        cfg_on["techniques"]["reflow"]["start"] = 0.5  # teacher frozen after 2 of 4 steps
    off = _trained_without_techniques()
    on, _ = train_cell(cfg_on, FIELDS, seed=0)
    p_off, p_on = _predict(off, ()), _predict(on, (technique,))
    assert torch.isfinite(p_on).all()
    assert not torch.allclose(p_off, p_on), f"{technique} changed nothing"


@pytest.mark.parametrize(
    ("technique", "check"),
    [
        ("multiscale", lambda m: m.tokens.code.B.shape[1] == 4 * 6),
        ("adaln", lambda m: all(b.ada is not None for b in m.decoder)),
        ("self_cond", lambda m: m.tokens.state.in_features == 2),
        ("droppath", lambda m: getattr(m.decoder[0].drop, "drop_prob", 0) == pytest.approx(0.1)),
        ("wave_prior", lambda m: m.tokens.waves == 4 and m.tokens.gate.out_features == 8),
    ],
)
def test_model_side_switches_change_architecture(technique, check):
    base = build_model(tiny_cfg(), 32, seed=0)
    model = build_model(tiny_cfg([technique]), 32, seed=0)
    assert check(model) and not check(base)


def test_timm_ema_equals_the_lerp_it_replaced():
    """timm's ModelEmaV3 as train_cell uses it (constant decay, parameters only) against the
    formula it replaced: ema <- ema + (1 - decay) (model - ema) per parameter, buffers kept."""
    from timm.utils import ModelEmaV3

    decay = DEFAULT_SETTINGS["ema"]["decay"]
    model = build_model(tiny_cfg(), 32, seed=0)
    ema, old = ModelEmaV3(model, decay=decay, exclude_buffers=True), copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):  # stand-in optimizer steps: every parameter moves
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
        ema.update(model)
        with torch.no_grad():
            for pe, pm in zip(old.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1 - decay)
    new_state, old_state = ema.module.state_dict(), old.state_dict()
    assert new_state.keys() == old_state.keys() and len(new_state) > 10
    for k, v in old_state.items():
        assert (new_state[k] - v).abs().max().item() <= 1e-6, k
    name = next(n for n, _ in model.named_parameters())
    assert not torch.allclose(new_state[name], model.state_dict()[name])  # it averages


class _StopAtStep4(logging.Handler):
    """Interrupts training when it logs step 4 (after step 3's checkpoint), as a kill would."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("step 4 "):
            raise KeyboardInterrupt


def test_run_stopped_after_a_checkpoint_resumes_to_the_same_ema_model(tmp_path, caplog):
    cfg = tiny_cfg(["ema", "clip_warmup"])
    cfg["train"] |= {"steps": 6, "checkpoint_every": 3}
    full, _ = train_cell(cfg, FIELDS, seed=0)

    ckpt = tmp_path / ".ckpt" / "last.pt"
    logger, stop = logging.getLogger("reconlab.sparse.train"), _StopAtStep4()
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.addHandler(stop)
        try:
            with pytest.raises(KeyboardInterrupt):
                train_cell(cfg, FIELDS, seed=0, checkpoint=ckpt)
        finally:
            logger.removeHandler(stop)
        caplog.clear()
        resumed, _ = train_cell(cfg, FIELDS, seed=0, checkpoint=ckpt)
    assert caplog.records[0].getMessage() == f"resumed from {ckpt} at step 3"
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_timm_drop_path_matches_the_one_it_replaced():
    """Identity in eval; in training whole samples dropped at the rate, kept ones scaled
    by 1 / (1 - rate), as the removed DropPath did (the draws themselves differ)."""
    from reconlab.sparse.models import stochastic_depth

    x = torch.randn(20_000, 3, 4)
    layer = stochastic_depth(0.25)
    assert isinstance(stochastic_depth(0.0), torch.nn.Identity)
    assert torch.equal(layer.eval()(x), x)
    torch.manual_seed(0)
    y = layer.train()(x)
    dropped = (y == 0).flatten(1).all(1)
    kept = ~dropped
    assert torch.allclose(y[kept], x[kept] / 0.75, rtol=1e-6, atol=0)
    # 20 000 Bernoulli(0.25) draws: std 0.0031, so 0.25 +- 0.0125 is a 4-sigma band
    assert abs(dropped.float().mean().item() - 0.25) < 0.0125
    torch.manual_seed(0)  # the removed implementation, on the same input
    keep = torch.rand(x.shape[0], 1, 1) >= 0.25
    old_dropped = ~keep.flatten()
    assert abs(old_dropped.float().mean().item() - dropped.float().mean().item()) < 0.02


@pytest.mark.parametrize(
    ("technique", "term"), [("consistency", "consistency"), ("fft_loss", "fft")]
)
def test_loss_side_switches_add_a_term(technique, term):
    model = build_model(tiny_cfg(), 32, seed=0)
    batch = _batch()
    off = flow_matching_loss(model, batch, {}, torch.Generator().manual_seed(0))
    on = flow_matching_loss(
        model, batch, {technique: DEFAULT_SETTINGS[technique]}, torch.Generator().manual_seed(0)
    )
    assert term not in off.extra and on.extra[term].item() > 0
    assert on.total.item() > on.flow.item()


def test_cosine_time_and_reflow_teacher_change_the_loss():
    model = build_model(tiny_cfg(), 32, seed=0)
    batch = _batch()
    base = flow_matching_loss(model, batch, {}, torch.Generator().manual_seed(0)).total
    cos = flow_matching_loss(model, batch, {"cosine_t": {}}, torch.Generator().manual_seed(0)).total
    teacher = copy.deepcopy(model).eval()
    refl = flow_matching_loss(
        model,
        batch,
        {"reflow": DEFAULT_SETTINGS["reflow"]},
        torch.Generator().manual_seed(0),
        teacher,
    ).total
    assert base.item() != pytest.approx(cos.item())
    assert base.item() != pytest.approx(refl.item())


def test_cell_config_holds_only_its_techniques():
    from reconlab.config import validate_params

    section = validate_params({"sparse": {}})["sparse"]
    changed = copy.deepcopy(section)
    changed["techniques"]["ema"]["decay"] = 0.9
    assert cell_config(section, "ema+cosine_t")["techniques"].keys() == {"ema", "cosine_t"}
    assert cell_config_json(section, "adaln") == cell_config_json(changed, "adaln")
    assert cell_config_json(section, "baseline") == cell_config_json(changed, "baseline")
    assert cell_config_json(section, "ema") != cell_config_json(changed, "ema")
    assert cell_config(section, "fixedq")["fixed_queries"] is True


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("prior", ["none", "smooth", "gp", "waves"])
@pytest.mark.parametrize("techniques", [(), ("adaln", "self_cond", "droppath")])
def test_every_registered_model_runs_without_nan(name, prior, techniques):
    cfg = tiny_cfg(techniques, backbone=name)
    cfg["model"]["kernel_prior"] = prior
    model = build_model(cfg, 32, seed=0)
    out = _predict(model, techniques)
    assert out.shape == (3, 32) and torch.isfinite(out).all()


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="sparse.model.backbone"):
        create_model("rnn")


def test_kernel_smooth_is_nearest_for_tiny_and_mean_for_huge_bandwidth():
    from reconlab.sparse.models import kernel_smooth

    obs_xy = torch.tensor([[[0.1, 0.1], [0.9, 0.9]]])
    obs_val = torch.tensor([[0.2, 0.8]])
    q = torch.tensor([[[0.15, 0.1], [0.85, 0.95]]])
    out = kernel_smooth(obs_xy, obs_val, q, torch.tensor([1e-3, 1e3]))
    assert torch.allclose(out[0, :, 0], torch.tensor([0.2, 0.8]))  # nearest observation
    assert torch.allclose(out[0, :, 1], torch.tensor([0.5, 0.5]))  # plain mean


def test_gp_prior_matches_a_numpy_gp_at_each_length_scale():
    from reconlab.sparse.gp import GP_JITTER
    from reconlab.sparse.models import gp_prior

    rng = np.random.default_rng(0)
    obs_xy = rng.uniform(0, 1, (1, 20, 2))
    obs_val = np.sin(6 * obs_xy[..., 0]) * 0.4 + 0.5
    q = rng.uniform(0, 1, (1, 7, 2))
    scales = torch.tensor([0.05, 0.2])
    prior = gp_prior(*(torch.tensor(a, dtype=torch.float32) for a in (obs_xy, obs_val, q)), scales)
    assert prior.mean.shape == (1, 7, 2) and prior.std.shape == (1, 7, 2)
    assert prior.evidence.shape == (1, 2)
    y = obs_val[0]
    mu, sd = y.mean(), y.std(ddof=1)

    def kern(a, b, ell):
        return np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * ell**2))

    for k, ell in enumerate(scales.tolist()):
        kxx = kern(obs_xy[0], obs_xy[0], ell) + GP_JITTER * np.eye(20)
        expected = mu + sd * kern(q[0], obs_xy[0], ell) @ np.linalg.solve(kxx, (y - mu) / sd)
        np.testing.assert_allclose(prior.mean[0, :, k].numpy(), expected, atol=1e-4)
    # at an observed pixel the GP is certain and returns the observation
    at_obs = gp_prior(
        torch.tensor(obs_xy, dtype=torch.float32),
        torch.tensor(obs_val, dtype=torch.float32),
        torch.tensor(obs_xy[:, :3], dtype=torch.float32),
        scales,
    )
    np.testing.assert_allclose(at_obs.mean[0, :, 0].numpy(), obs_val[0, :3], atol=1e-3)
    assert (at_obs.std < 0.05).all()


def test_gp_prior_model_starts_at_its_kriging_base_and_is_autocast_safe():
    cfg = tiny_cfg((), prediction="data")
    cfg["model"]["kernel_prior"] = "gp"
    model = build_model(cfg, 32, seed=0)
    g = torch.Generator().manual_seed(0)
    obs_xy, q = torch.rand(2, 20, 2, generator=g), torch.rand(2, 9, 2, generator=g)
    obs_val = torch.rand(2, 20, generator=g)
    x_t, t = torch.randn(2, 9, generator=g), torch.rand(2, generator=g)
    out, base = model(obs_xy, obs_val, q, x_t, t)
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised head: only the base
    from reconlab.sparse.models import gp_prior

    means = gp_prior(obs_xy, obs_val, q, model.tokens.widths).mean
    assert (base >= means.min(-1).values - 1e-5).all() and (
        base <= means.max(-1).values + 1e-5
    ).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        prior = gp_prior(obs_xy, obs_val, q, model.tokens.widths)
    assert prior.mean.dtype == torch.float32
    torch.testing.assert_close(prior.mean, means)


def test_unknown_kernel_prior_is_a_clear_error():
    cfg = tiny_cfg(())
    cfg["model"]["kernel_prior"] = "kriging"
    with pytest.raises(ValueError, match="sparse.model.kernel_prior: 'kriging'"):
        build_model(cfg, 32, seed=0)


def test_median_start_is_deterministic_and_noise_start_is_not():
    from reconlab.sparse.train import predict_fields

    cfg = tiny_cfg(())
    model = build_model(cfg, 32, seed=0).eval()
    fields = np.random.default_rng(0).uniform(0, 1, (2, 32, 32)).astype(np.float32)
    masks = np.stack([np.arange(51) * 7, np.arange(51) * 11])
    runs = {}
    for start in ("median", "noise"):
        c = dict(cfg, sampler=dict(cfg["sampler"], start=start))
        runs[start] = [predict_fields(model, c, fields, masks, seed) for seed in (0, 1)]
    np.testing.assert_array_equal(runs["median"][0], runs["median"][1])
    assert not np.allclose(runs["noise"][0], runs["noise"][1])


def test_ablation_cell_uses_the_plain_model_and_fixed_queries():
    from reconlab.config import validate_params

    section = validate_params({"sparse": {}})["sparse"]
    ablation, baseline = cell_config(section, "fixedq"), cell_config(section, "baseline")
    assert ablation["fixed_queries"] is True and baseline["fixed_queries"] is False
    assert ablation["model"]["kernel_prior"] == "none" and not ablation["model"]["distance_bias"]
    assert baseline["model"]["kernel_prior"] == "gp" and baseline["model"]["distance_bias"]
