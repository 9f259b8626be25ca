"""Every technique switch changes the model, the loss or the trained weights; models by registry."""

import copy

import numpy as np
import pytest
import torch

from reconlab.sparse.flow import flow_matching_loss
from reconlab.sparse.grid import cell_config, cell_config_json
from reconlab.sparse.models import MODELS, create_model
from reconlab.sparse.task import QuerySampler
from reconlab.sparse.techniques import DEFAULT_SETTINGS, TECHNIQUES, check_techniques
from reconlab.sparse.train import build_model, train_cell


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
            "kernel_prior": True,
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
        },
        "sampler": {"method": "euler", "steps": 2},
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
        _OFF["model"] = train_cell(tiny_cfg(), FIELDS, seed=0, log=lambda s: None)[0]
    return _OFF["model"]


def _batch(seed=0):
    return QuerySampler(torch.from_numpy(FIELDS.reshape(6, -1)), 51, 32, seed).sample(3)


def _predict(model, techniques):
    b = _batch(9)
    x = torch.zeros(3, 32)
    with torch.no_grad():
        cond = torch.zeros(3, 32) if "self_cond" in techniques else None
        return model(b.obs_xy, b.obs_val, b.query_xy, x, torch.full((3,), 0.5), cond).velocity


def test_registry_lists_ten_techniques():
    assert len(TECHNIQUES) == 10 and set(DEFAULT_SETTINGS) == set(TECHNIQUES)
    assert check_techniques(["ema", "reflow"]) == ("reflow", "ema")
    with pytest.raises(ValueError, match="unknown technique"):
        check_techniques(["dropout"])


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_switch_changes_trained_model(technique):
    cfg_on = tiny_cfg([technique])
    if technique == "reflow":
        cfg_on["techniques"]["reflow"]["start"] = 0.5  # teacher frozen after 2 of 4 steps
    off = _trained_without_techniques()
    on, _ = train_cell(cfg_on, FIELDS, seed=0, log=lambda s: None)
    p_off, p_on = _predict(off, ()), _predict(on, (technique,))
    assert torch.isfinite(p_on).all()
    assert not torch.allclose(p_off, p_on), f"{technique} changed nothing"


@pytest.mark.parametrize(
    ("technique", "check"),
    [
        ("multiscale", lambda m: m.tokens.code.B.shape[1] == 4 * 6),
        ("adaln", lambda m: all(b.ada is not None for b in m.decoder)),
        ("self_cond", lambda m: m.tokens.state.in_features == 2),
        ("droppath", lambda m: m.decoder[0].drop.rate == pytest.approx(0.1)),
    ],
)
def test_model_side_switches_change_architecture(technique, check):
    base = build_model(tiny_cfg(), 32, seed=0)
    model = build_model(tiny_cfg([technique]), 32, seed=0)
    assert check(model) and not check(base)


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
@pytest.mark.parametrize("techniques", [(), ("adaln", "self_cond", "droppath")])
def test_every_registered_model_runs_without_nan(name, techniques):
    model = build_model(tiny_cfg(techniques, backbone=name), 32, seed=0)
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
