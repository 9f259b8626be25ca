"""The one metrics module: PSNR of known pairs equals the closed form in every study's use."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reconlab.evaluation.image_metrics import PSNR_MAX_DB, per_image_metrics, psnr_per_image
from reconlab.sparse.study import save_samples
from reconlab.sparse.train import field_metrics


def known_pair(shape):
    """target in [0.2, 0.8] and pred = target + 0.1 (inside [0, 1]): MSE 0.01, PSNR 20 dB."""
    target = np.random.default_rng(0).uniform(0.2, 0.8, shape)
    return target + 0.1, target


def test_psnr_of_a_known_pair_is_the_closed_form():
    pred, target = known_pair((3, 8, 8))
    np.testing.assert_allclose(psnr_per_image(pred, target), [20.0] * 3, atol=1e-5)
    assert isinstance(psnr_per_image(pred, target), np.ndarray)
    t = psnr_per_image(torch.from_numpy(pred).float(), torch.from_numpy(target).float())
    torch.testing.assert_close(t, torch.full((3,), 20.0), atol=1e-4, rtol=0)
    # an exact reconstruction is capped, not +inf
    assert psnr_per_image(target, target).tolist() == [PSNR_MAX_DB] * 3
    with pytest.raises(ValueError, match=r"pred \(3, 8, 8\) and target \(3, 8\) differ"):
        psnr_per_image(pred, target[..., 0])


def test_every_study_reports_the_same_psnr(tmp_path):
    pred, target = known_pair((2, 1, 16, 16))
    pred[0, 0, 0, :4] = 1.5  # out of range: clamped to 1 for the clamped PSNR
    images = per_image_metrics(torch.from_numpy(pred).float(), torch.from_numpy(target).float())
    fields = field_metrics(pred[:, 0], target[:, 0])
    clamped = np.clip(pred, 0, 1)
    expected = 10 * np.log10(1 / ((clamped - target) ** 2).reshape(2, -1).mean(1))
    np.testing.assert_allclose(images["psnr"].numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(fields["psnr"], expected, atol=1e-5)
    # the sample files the report's viewer shows carry the study's own clamped PSNR
    save_samples(tmp_path / "s.npz", target[:, 0], {"pred": pred[:, 0]}, np.zeros((2, 3), int),
                 ["a", "b"])  # fmt: skip
    np.testing.assert_allclose(np.load(tmp_path / "s.npz")["psnr_pred"], expected, atol=1e-5)
    raw = 10 * np.log10(1 / ((pred - target) ** 2).reshape(2, -1).mean(1))
    np.testing.assert_allclose(fields["psnr_unclamped"], raw, atol=1e-5)
    assert fields["psnr_unclamped"][0] < fields["psnr"][0]
