"""The family-aware limit: each family's own form fitted to 51 of 1024 pixels, as a reference row."""

import json

import numpy as np
import pytest

from reconlab.config import FieldsConfig, validate_params
from reconlab.data.fields import FAMILIES, make_field, make_fields
from reconlab.sparse.aggregate import best_interpolation_baseline, family_fit_limit
from reconlab.sparse.baselines import interpolate_fields
from reconlab.sparse.family_fit import DEFAULTS, FORMS, NOT_APPLICABLE, family_fit, fit_form
from reconlab.sparse.study import run_baselines, summarize_baseline

SIZE, OBSERVED = 32, 51
_c = (np.arange(SIZE) + 0.5) / SIZE
XY = np.stack([a.ravel() for a in np.meshgrid(_c, _c, indexing="ij")], -1)  # (1024, 2) (y, x)


def observe(field: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """51 seeded random observed pixels of a (32, 32) field: coordinates (51, 2), values (51,)."""
    idx = np.random.default_rng([99, seed]).choice(SIZE * SIZE, OBSERVED, replace=False)
    return XY[idx], field.ravel()[idx].astype(np.float64)


def psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((pred - truth.ravel().astype(np.float64)) ** 2)))


@pytest.mark.parametrize("family", ["sinusoid", "radial", "interference"])
@pytest.mark.parametrize("seed", [0, 1])
def test_fit_recovers_fields_of_its_family(family, seed):
    field = make_field(family, SIZE, np.random.default_rng([2026, seed]))
    pred = family_fit(*observe(field, seed), XY, family=family)
    assert pred.shape == (SIZE * SIZE,)
    # float32 rounding of the stored field limits it near 157 dB; 60 dB is the bar
    assert psnr(pred, field) >= 60.0


def test_fit_finds_the_known_wave_vector():
    # a plane wave built here: 2.5 cycles at 0.7 rad, phase 1, min-max normalised
    k = 2.5 * np.array([np.sin(0.7), np.cos(0.7)])  # (ky, kx)
    wave = np.sin(2 * np.pi * XY @ k + 1.0)
    field = (wave - wave.min()) / (wave.max() - wave.min())
    theta, coef, cost = fit_form("sinusoid", *observe(field, 3))
    assert cost < 1e-20
    assert min(np.abs(theta - k).max(), np.abs(theta + k).max()) < 1e-8  # the wave or its mirror
    assert np.isclose(coef[2], -wave.min() / (wave.max() - wave.min()), atol=1e-8)  # offset


def test_families_without_a_form_are_not_applicable():
    assert set(FAMILIES) - set(FORMS) == {"multi_frequency", "modulated", "composite"}
    field = make_field("modulated", SIZE, np.random.default_rng(5))
    assert family_fit(*observe(field, 5), XY, family="modulated") is None

    rng = np.random.default_rng(6)
    fields = np.stack([make_field(f, SIZE, rng) for f in ("sinusoid", "modulated")])
    masks = np.stack([np.sort(rng.choice(SIZE * SIZE, OBSERVED, replace=False)) for _ in "ab"])
    pred = interpolate_fields("family_fit", fields, masks, ["sinusoid", "modulated"])
    assert np.isfinite(pred[0]).all() and np.isnan(pred[1]).all()
    summary = summarize_baseline(pred, fields, np.array([0, 1]), ["sinusoid", "modulated"])
    assert summary["by_family"]["modulated"] == NOT_APPLICABLE == summary["all"]
    assert summary["by_family"]["sinusoid"]["psnr"] == 100.0  # field_metrics caps at 100 dB
    assert summary["applicable"]["psnr"] == 100.0
    with pytest.raises(ValueError, match="'family_fit' needs each field's family"):
        interpolate_fields("family_fit", fields, masks)


@pytest.mark.parametrize(
    ("form", "family", "noise"),
    [
        ("sinusoid", "composite", 0.0),
        ("radial", "multi_frequency", 0.0),
        ("interference", "modulated", 0.0),
        ("sinusoid", "sinusoid", 0.1),
        ("interference", "interference", 0.1),
    ],
)
def test_wrong_family_or_noisy_field_gives_finite_values_in_range(form, family, noise):
    field = make_field(family, SIZE, np.random.default_rng([7, len(family)]), noise)
    pred = family_fit(*observe(field, 7), XY, family=form)
    assert pred.shape == (SIZE * SIZE,)
    assert np.isfinite(pred).all() and pred.min() >= 0.0 and pred.max() <= 1.0
    if form == family:  # the noise-free truth is still close: the fit averages the noise away
        clean = make_field(family, SIZE, np.random.default_rng([7, len(family)]))
        assert psnr(pred, clean) > 20.0


def test_constant_observations_give_finite_values():
    pred = family_fit(XY[:OBSERVED], np.full(OBSERVED, 0.5), XY, family="interference")
    assert np.isfinite(pred).all() and np.allclose(pred, 0.5, atol=1e-6)


def test_schema_defaults_are_the_module_defaults():
    assert validate_params({"sparse": {}})["sparse"]["baselines"]["family_fit"] == DEFAULTS
    assert "family_fit" in validate_params({"sparse": {}})["sparse"]["baselines"]["methods"]


def test_limit_is_reported_but_never_the_best_interpolation_baseline():
    row = {"psnr": 20.0}
    base = {
        "mean": {"by_family": {"sinusoid": {"psnr": 11.0}, "composite": {"psnr": 10.0}}},
        "gp": {"by_family": {"sinusoid": row, "composite": {"psnr": 15.0}}},
        "family_fit": {"by_family": {"sinusoid": {"psnr": 100.0}, "composite": NOT_APPLICABLE}},
    }
    families = ["sinusoid", "composite"]
    assert best_interpolation_baseline(base, families) == {
        "sinusoid": (20.0, "gp"),
        "composite": (15.0, "gp"),
    }
    assert family_fit_limit(base, families) == {"sinusoid": 100.0, "composite": NOT_APPLICABLE}
    assert family_fit_limit({"gp": base["gp"]}, families) is None


def test_run_baselines_writes_the_limit_beside_the_baselines(tmp_path):
    make_fields(FieldsConfig(per_family={"train": 1, "val": 1, "test": 1}), tmp_path / "fields")
    section = validate_params({"sparse": {"baselines": {"methods": ["nearest", "family_fit"]}}})
    result = run_baselines(section["sparse"], tmp_path / "fields", tmp_path / "b.json")
    written = json.loads((tmp_path / "b.json").read_text())
    assert written == json.loads(json.dumps(result))
    for split in ("val", "test"):
        limit = written[split]["family_fit"]["by_family"]
        for family in ("sinusoid", "radial", "interference"):
            assert limit[family]["psnr"] == 100.0  # capped: the fit is exact to float32 rounding
        for family in ("multi_frequency", "modulated", "composite"):
            assert limit[family] == NOT_APPLICABLE
        assert written[split]["family_fit"]["all"] == NOT_APPLICABLE
        assert all(isinstance(v, dict) for v in written[split]["nearest"]["by_family"].values())
