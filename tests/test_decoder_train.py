"""The decoder training loop on in-memory tensors: it learns, stops on NaN, and resumes exactly."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from reconlab.config import DecoderConfig
from reconlab.decoder.data import DecoderDataset, to_uint8
from reconlab.decoder.train import LOG_FIELDS, train_decoder
from reconlab.evaluation.image_metrics import per_image_metrics

CPU = torch.device("cpu")


def make_dataset(n: int = 4, grid: int = 2, dim: int = 32, patch: int = 14, seed: int = 0):
    """Random feature grids (data, not mocks) paired with smooth random images."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(n, grid, grid, dim, generator=g)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    images = F.interpolate(coarse, size=(grid * patch,) * 2, mode="bicubic").clamp(0, 1)
    return DecoderDataset([features], to_uint8(images))


def tiny_cfg(**overrides) -> DecoderConfig:
    # fp32: the loop's logic does not depend on precision, and `auto` (bf16 on this CPU class)
    # runs these tiny convolutions ~3x slower; the smoke run trains under `auto`
    base = DecoderConfig(
        width=16, batch_size=2, epochs=2, checkpoint_every=2, eval_batch_size=4, precision="fp32"
    )
    return dataclasses.replace(base, **overrides)


@pytest.mark.slow
def test_overfits_one_batch_above_35_db():
    data = make_dataset()
    # GroupNorm: one batch in eval mode must see the statistics it trained with (BatchNorm's
    # running averages lag). fp32: CPU bf16 GroupNorm kernels are slow at this tiny size.
    cfg = tiny_cfg(
        epochs=400, batch_size=4, width=64, lr=5e-3, norm="group", warmup_frac=0.0,
        min_lr_ratio=0.1, precision="fp32",
    )  # fmt: skip
    result = train_decoder(cfg, data, None, patch_size=14, progress=False)
    idx = torch.arange(len(data))
    with torch.no_grad():
        pred = result.model(data.batch_features(idx, CPU, cfg.channels_last)).rgb
    psnr = per_image_metrics(pred, data.batch_images(idx, CPU))["psnr"]
    assert result.steps == 400
    assert psnr.min() >= 35.0, psnr


def test_logs_one_row_per_epoch_with_decreasing_loss():
    data = make_dataset(n=8)
    result = train_decoder(tiny_cfg(epochs=6, lr=3e-3), data, data, 14, progress=False)
    assert [r["epoch"] for r in result.log] == [1, 2, 3, 4, 5, 6]
    assert set(result.log[0]) == set(LOG_FIELDS)
    assert result.steps == 6 * 4  # 8 images / batch 2
    assert result.log[-1]["train_loss"] < result.log[0]["train_loss"]
    assert all(math.isfinite(r["val_loss"]) for r in result.log)
    assert result.samples_per_s > 0


def test_nan_loss_stops_with_the_step_number():
    data = make_dataset(n=4)
    data.features[0][3, 0, 0, 0] = float("nan")  # row 3 poisons the first batch it is drawn in
    with pytest.raises(RuntimeError, match=r"loss is nan at step \d+ \(epoch \d+\)"):
        train_decoder(tiny_cfg(epochs=3), data, None, 14, progress=False)


def test_killed_run_resumes_to_the_same_result(tmp_path):
    data = make_dataset(n=4)
    cfg = tiny_cfg(epochs=3, checkpoint_every=2)  # 6 steps, checkpoints at 2, 4, 6
    full = train_decoder(cfg, data, data, 14, progress=False)

    ckpt = tmp_path / "ckpt" / "last.pt"
    first = train_decoder(cfg, data, data, 14, checkpoint=ckpt, max_steps=3, progress=False)
    assert first.steps == 3 and ckpt.exists()  # "killed" mid-epoch, after a checkpoint at 3
    resumed = train_decoder(cfg, data, data, 14, checkpoint=ckpt, progress=False)
    assert resumed.resumed_from == 3 and resumed.steps == 6
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.log]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in full.log]
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_checkpoint_from_other_params_is_ignored(tmp_path):
    data = make_dataset(n=4)
    ckpt = tmp_path / "last.pt"
    train_decoder(tiny_cfg(epochs=1), data, None, 14, checkpoint=ckpt, progress=False)
    again = train_decoder(tiny_cfg(epochs=1, lr=2e-3), data, None, 14, checkpoint=ckpt,
                          progress=False)  # fmt: skip
    assert again.resumed_from == 0
    # evaluation-only keys do not invalidate a checkpoint
    same = train_decoder(tiny_cfg(epochs=1, lr=2e-3, max_samples=1), data, None, 14,
                         checkpoint=ckpt, progress=False)  # fmt: skip
    assert same.resumed_from == same.steps == 2


def test_dataset_rejects_misaligned_inputs():
    feats = torch.randn(3, 2, 2, 4)
    with pytest.raises(ValueError, match="uint8"):
        DecoderDataset([feats], torch.rand(3, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\(N=3, h=2, w=2, D\)"):
        DecoderDataset(
            [feats, torch.randn(3, 3, 2, 4)], torch.zeros(3, 3, 28, 28, dtype=torch.uint8)
        )


def test_several_inputs_are_concatenated_along_channels():
    a, b = torch.randn(2, 2, 3, 4), torch.randn(2, 2, 3, 5)
    data = DecoderDataset([a, b.to(torch.bfloat16)], torch.zeros(2, 3, 28, 42, dtype=torch.uint8))
    x = data.batch_features(torch.tensor([1]), CPU, channels_last=True)
    assert data.channels == 9 and data.grid == (2, 3)
    assert x.shape == (1, 9, 2, 3) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x[0, :4], a[1].permute(2, 0, 1))


def test_precise_batchnorm_makes_eval_mode_match_the_training_statistics():
    from reconlab.decoder.train import build_decoder, precise_batchnorm
    from reconlab.runtime import precision_for

    data = make_dataset(n=4)
    cfg = tiny_cfg(norm="batch", eval_batch_size=4, precision="fp32")  # one batch: exact stats
    torch.manual_seed(0)
    model = build_decoder(cfg, data.channels, 14)
    x = data.batch_features(torch.arange(4), CPU)
    with torch.no_grad():
        stale = model.eval()(x).rgb  # fresh running stats (mean 0, var 1)
        train_mode = model.train()(x).rgb  # batch statistics
    precise_batchnorm(model, data, cfg, CPU, precision_for(CPU, "fp32"))
    with torch.no_grad():
        calibrated = model.eval()(x).rgb
    # (not exactly equal: running_var is the unbiased variance, batch normalisation the biased one)
    stale_gap = (stale - train_mode).abs().mean()
    calibrated_gap = (calibrated - train_mode).abs().mean()
    assert calibrated_gap < 0.01 and calibrated_gap < stale_gap / 5, (calibrated_gap, stale_gap)
