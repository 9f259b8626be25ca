"""Evaluation: baselines, metrics against them, the verdict, LPIPS only from real weights."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from reconlab.config import DecoderConfig
from reconlab.decoder.baselines import bicubic_thumbnail, mean_image
from reconlab.decoder.data import DecoderDataset, to_uint8
from reconlab.decoder.evaluate import evaluate_decoder, verdict
from reconlab.decoder.model import create_decoder
from reconlab.decoder.perceptual import NO_WEIGHTS, load_lpips
from reconlab.runtime import precision_for

CPU = torch.device("cpu")


def test_bicubic_thumbnail_keeps_patch_constant_images():
    # an image that is constant on each patch is exactly what a grid-sized thumbnail holds,
    # so its thumbnail is exact and bicubic upsampling of a constant image is that constant
    flat = torch.full((1, 3, 28, 28), 0.25)
    assert torch.allclose(bicubic_thumbnail(flat, (2, 2)), flat, atol=1e-6)
    noisy = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    out = bicubic_thumbnail(noisy, (2, 2))
    assert out.shape == noisy.shape and out.min() >= 0 and out.max() <= 1
    # the thumbnail holds each patch's mean colour
    thumb = torch.nn.functional.avg_pool2d(noisy, 14)
    assert torch.allclose(torch.nn.functional.avg_pool2d(out, 14), thumb, atol=0.05)


def test_mean_image_of_uint8_and_float_agree():
    images = torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    as_uint8 = to_uint8(images)
    assert torch.allclose(
        mean_image(as_uint8, batch=2), (as_uint8.float() / 255).mean(0), atol=1e-6
    )
    with pytest.raises(ValueError, match="no training images"):
        mean_image(torch.empty(0, 3, 4, 4))


def _test_set(n: int = 3) -> DecoderDataset:
    g = torch.Generator().manual_seed(2)
    return DecoderDataset(
        [torch.randn(n, 2, 2, 8, generator=g)], to_uint8(torch.rand(n, 3, 32, 32, generator=g))
    )


def test_evaluation_reports_decoder_and_baselines_per_image():
    torch.manual_seed(0)
    test = _test_set()
    model = create_decoder("tiny", 8, 16, width=8).eval()
    cfg = DecoderConfig(max_samples=2, eval_batch_size=2)
    mean = torch.full((3, 32, 32), 0.5)
    ev = evaluate_decoder(
        model, test, mean, cfg, CPU, precision_for(CPU, "fp32"), files=["a", "b", "c"]
    )
    s = ev.summary
    assert s["n_test"] == 3 and len(ev.rows) == 3 and ev.rows[2]["file"] == "c"
    for key in ("psnr", "ssim", "mae", "mse", "baseline_bicubic_psnr", "baseline_mean_psnr"):
        assert math.isfinite(s[key]) and math.isfinite(s[f"{key}_std"])
    rows_psnr = sum(r["psnr"] for r in ev.rows) / 3
    assert s["psnr"] == pytest.approx(rows_psnr)
    assert s["gain_over_bicubic_db"] == pytest.approx(s["psnr"] - s["baseline_bicubic_psnr"])
    assert s["gain_over_mean_db"] == pytest.approx(s["psnr"] - s["baseline_mean_psnr"])
    assert s["beats_bicubic"] == (s["gain_over_bicubic_db"] > 0)
    assert s["lpips"] == NO_WEIGHTS and s["lpips"].startswith("not computed: ")
    assert ev.samples["pred"].shape == (2, 3, 32, 32) and ev.samples["pred"].dtype == torch.uint8
    # the mean-image baseline row equals the metric of a constant 0.5 prediction
    target = test.images[0].float() / 255
    expected_mae = (target - 0.5).abs().mean().item()
    assert ev.rows[0]["baseline_mean_mae"] == pytest.approx(expected_mae, abs=1e-5)


def test_verdict_says_plainly_when_the_thumbnail_wins():
    assert verdict(1.5, 4.0) == "beats the bicubic thumbnail by 1.50 dB"
    assert "does NOT beat the bicubic thumbnail (-2.00 dB)" in verdict(-2.0, 3.0)
    assert "nor the mean image" in verdict(-2.0, -1.0)


def test_lpips_from_a_weights_file_and_clear_errors(tmp_path):
    weights = tmp_path / "alexnet.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), weights)
    hub_dir = torch.hub.get_dir()
    lpips, identity = load_lpips(weights, "alex")
    assert torch.hub.get_dir() == hub_dir  # the loader's temporary hub folder is gone again
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(3, 3, 64, 64, generator=g), torch.rand(3, 3, 64, 64, generator=g)
    assert torch.allclose(lpips(a, a), torch.zeros(3), atol=1e-6)
    # Values of the former implementation (torchmetrics' private _LPIPS with the same file and
    # images): the public LearnedPerceptualImagePatchSimilarity gives the same numbers.
    expected = torch.tensor([0.09123153, 0.09519308, 0.08924329])
    assert torch.allclose(lpips(a, b), expected, atol=1e-5)
    assert identity.startswith("sha256:") and len(identity) == 7 + 64

    with pytest.raises(
        FileNotFoundError, match=r"decoder.lpips_weights: .*missing.pth' is neither"
    ):
        load_lpips(tmp_path / "missing.pth", "alex")
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), tmp_path / "sq.pth")
    with pytest.raises(
        ValueError, match=r"decoder.lpips_weights: .*sq.pth does not fit .*'features.3.weight'"
    ):
        load_lpips(tmp_path / "sq.pth", "alex")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="is not a torch state dict"):
        load_lpips(tmp_path / "junk.pth", "alex")
