"""FID and FDD: the Fréchet distance, its bootstrap interval, patches, and the real networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from reconlab.evaluation.frechet import bootstrap_interval, frechet_distance
from reconlab.tokenizer.frechet import (
    PatchSampler,
    build_frechet_nets,
    frechet_scores,
    inception_fid,
    patch_grid,
)
from reconlab.tokenizer.params import frechet_backbone

FRECHET = {"patch": 16, "max_samples": 12, "bootstrap": 20, "seed": 0, "inception_features": 2048}
FEATURES = {
    "seed": 0,
    "backbones": [{"id": "dinov2_s14", "model": "vit_small_patch14_dinov2.lvd142m",
                   "weights": "random"}],
}  # fmt: skip


def sqrtm_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """dgm-eval's / pytorch-fid's formula, with scipy's matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))


@pytest.mark.parametrize("n,d", [(12, 30), (60, 8)])  # fewer samples than dims, and more
def test_frechet_distance_equals_the_sqrtm_formula(n, d):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(n, d)), rng.normal(0.3, 1.5, size=(n + 3, d))
    assert frechet_distance(a, b) == pytest.approx(sqrtm_frechet(a, b), rel=1e-6)


def test_identical_sets_give_zero_and_a_shift_gives_d_times_shift_squared():
    a = torch.randn(40, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, a + 0.5) == pytest.approx(16 * 0.25, rel=1e-9)
    assert frechet_distance(a, a * 2) > frechet_distance(a, a * 1.1) > 0


def test_fewer_than_two_samples_is_refused():
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))


def test_bootstrap_interval_of_paired_sets():
    a = torch.randn(30, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert bootstrap_interval(a, a, 50, 0) == pytest.approx([0.0, 0.0], abs=1e-9)
    lo, hi = bootstrap_interval(a + 1.0, a, 50, 0)
    assert lo <= hi and lo == pytest.approx(6.0, rel=1e-9)  # a constant shift survives resampling
    b = a + 0.3 * torch.randn(
        30, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    lo, hi = bootstrap_interval(b, a, 100, 0)
    assert lo < hi and bootstrap_interval(b, a, 100, 0) == [lo, hi]  # seeded


def test_patch_grid_and_sampler_keep_the_same_squares_of_both_images():
    img = torch.rand(1, 3, 40, 50)
    tiles = patch_grid(img, 16)
    assert tiles.shape == (6, 3, 16, 16) and torch.equal(tiles[1], img[0, :, :16, 16:32])
    assert patch_grid(img, 64).shape == (1, 3, 40, 50)  # smaller than a patch: one sample
    s = PatchSampler(16, 5, n_images=2, seed=0)
    s.add(img, 1 - img)
    s.add(img, 1 - img)
    t, r = s.samples()
    assert len(t) == len(r) == 5 and s.images == 2
    assert all(
        torch.equal(a.int() + b.int(), torch.full_like(a.int(), 255))
        for a, b in zip(t, r, strict=True)
    )


def test_frechet_backbone_names_the_key_for_an_unknown_id():
    assert frechet_backbone(FEATURES, "dinov2_s14")["seed"] == 0
    assert frechet_backbone(FEATURES, None) is None
    with pytest.raises(ValueError, match="tokenizer.eval.frechet.backbone: 'nope'"):
        frechet_backbone(FEATURES, "nope")


@pytest.mark.slow
def test_random_inception_file_round_trips_into_torchmetrics_fid(tmp_path):
    from torchmetrics.image.fid import FrechetInceptionDistance

    from reconlab.weights import inception_weights_file

    path, identity = inception_weights_file("random", tmp_path, "test.inception", seed=3)
    assert path.is_file() and identity == "random:3"
    fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(path))
    saved = torch.load(path, weights_only=True)
    net = fid.inception.state_dict()
    assert set(saved) <= set(net) and all(torch.equal(saved[k], net[k]) for k in saved)
    # ... and a file given by path is used as it is: its identity is its content hash
    again, file_id = inception_weights_file(str(path), tmp_path / "w", "test.inception")
    assert file_id.startswith("sha256:")


def test_inception_runs_once_per_patch_and_its_features_give_torchmetrics_fid(tmp_path):
    from torchmetrics.image.fid import FrechetInceptionDistance

    from reconlab.weights import inception_weights_file

    path, _ = inception_weights_file("random", tmp_path, "test.inception", seed=3)
    metric = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(path))
    calls = []
    metric.inception.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    gen = torch.Generator().manual_seed(0)
    t = [torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8, generator=gen) for _ in range(3)]
    r = [(x // 2 + 60).to(torch.uint8) for x in t]
    value, ft, fr = inception_fid(metric, t, r)
    assert calls == [3, 3]  # one pass over the targets, one over the reconstructions
    with torch.inference_mode():
        assert torch.equal(ft, metric.inception(torch.cat(t)).double())
        assert torch.equal(fr, metric.inception(torch.cat(r)).double())
    assert ft.shape == fr.shape == (3, 2048)
    assert value == pytest.approx(frechet_distance(fr, ft), rel=1e-3, abs=1e-9)


def test_inception_features_picks_torchmetrics_feature_layer_and_is_recorded(tmp_path):
    frechet = {**FRECHET, "inception_weights": "random", "inception_features": 64}
    nets = build_frechet_nets(frechet, None)
    gen = torch.Generator().manual_seed(0)
    s = PatchSampler(16, 6, 1, 0)
    x = torch.rand(1, 3, 32, 48, generator=gen)
    s.add(x, (x * 0.5 + 0.4).clamp(0, 1))
    t, r = s.samples()
    value, ft, fr = inception_fid(nets.fid, t, r)
    assert ft.shape == fr.shape == (6, 64)  # FID-64: the first pool layer, not the 2048-d one
    scores = frechet_scores(nets, s, frechet)
    assert scores["fid_features"] == 64 and scores["fid"] == pytest.approx(value)


@pytest.mark.slow
def test_fid_and_fdd_from_random_weights_are_computed_and_marked_untrained():
    # FID-64: the same code path as FID-2048 (checked above), without 20 bootstrap replicates
    # of a 2048 x 2048 matrix square root (~25 s)
    frechet = {**FRECHET, "inception_weights": "random", "inception_features": 64}
    nets = build_frechet_nets(frechet, frechet_backbone(FEATURES, "dinov2_s14"))
    gen = torch.Generator().manual_seed(0)
    imgs = [torch.rand(1, 3, 32, 48, generator=gen) for _ in range(2)]  # 2 x 6 patches of 16
    same, shifted = PatchSampler(16, 12, 2, 0), PatchSampler(16, 12, 2, 0)
    for x in imgs:
        same.add(x, x)
        shifted.add(x, (x * 0.5 + 0.4).clamp(0, 1))
    a, b = frechet_scores(nets, same, frechet), frechet_scores(nets, shifted, frechet)
    assert a["fid"] == pytest.approx(0.0, abs=1e-2) and a["fdd"] == pytest.approx(0.0, abs=1e-6)
    # random weights give tiny features (measured: FID ~1e-13, FDD ~1e-5): larger, but tiny
    assert b["fid"] > max(a["fid"], 0.0) and b["fdd"] > max(a["fdd"], 0.0)
    assert b["fid_samples"] == b["fdd_samples"] == 12 and b["fdd_backbone"] == "dinov2_s14"
    assert b["fid_features"] == 64
    assert b["fid_weights"] == "random:0" and b["fid_untrained"] and b["fdd_untrained"]
    assert b["fid_ci"][0] <= b["fid_ci"][1] and b["fdd_ci"][0] <= b["fdd_ci"][1]


def test_no_networks_means_not_computed_with_the_key():
    nets = build_frechet_nets({**FRECHET, "inception_weights": "none"}, None)
    s = PatchSampler(16, 4, 1, 0)
    s.add(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    r = frechet_scores(nets, s, FRECHET)
    assert r["fid"] == "not computed: tokenizer.eval.frechet.inception_weights is 'none'"
    assert r["fdd"] == "not computed: tokenizer.eval.frechet.backbone is null"


def test_metrics_carry_the_value_its_sample_count_or_the_reason():
    from reconlab.tokenizer.summary import frechet_metrics

    r = {"fid": 1.25, "fid_samples": 8, "fid_untrained": True, "fdd": "not computed: why"}
    assert frechet_metrics(r) == {
        "fid": 1.25, "fid_samples": 8, "fid_untrained": True, "fdd": "not computed: why",
        "fid_features": 2048,  # results written before the width was recorded: standard FID
    }  # fmt: skip
    assert frechet_metrics({**r, "fid_features": 64})["fid_features"] == 64
    assert "fid_features" not in frechet_metrics({**r, "fid": "not computed: none"})
