"""Evaluate a trained decoder on the held-out test split, next to its two baselines.

Every test image gets MAE, MSE, PSNR and SSIM (torchmetrics, data range 1) for the decoder, the
bicubic thumbnail and the mean training image; the summary is mean ± std over images plus the
decoder's gain over each baseline in dB, and a plain verdict when it does not beat the thumbnail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from reconlab.config import DecoderConfig
from reconlab.decoder.baselines import bicubic_thumbnail
from reconlab.decoder.data import DecoderDataset, to_uint8
from reconlab.decoder.perceptual import NO_WEIGHTS, LpipsFn
from reconlab.evaluation.image_metrics import count_capped, per_image_metrics, summarize
from reconlab.runtime import Precision

METRICS = ("mae", "mse", "psnr", "ssim")
METHODS = {"decoder": "", "bicubic": "baseline_bicubic_", "mean": "baseline_mean_"}


class Evaluation(NamedTuple):
    summary: dict  # the scalar part of metrics.json
    rows: list[dict]  # one per test image (per_sample.csv)
    samples: dict[str, torch.Tensor]  # first max_samples images, uint8: target, pred, bicubic, mean


@torch.inference_mode()
def evaluate_decoder(
    model: nn.Module,
    test: DecoderDataset,
    train_mean: torch.Tensor,
    cfg: DecoderConfig,
    device: torch.device,
    prec: Precision,
    files: Sequence[str] | None = None,
    lpips: LpipsFn | None = None,
) -> Evaluation:
    """Metrics of ``model`` and both baselines on every image of ``test``.

    Args:
        train_mean: (3, H, W) mean training image (the mean-image baseline).
        files: names of the test images (per-sample rows); defaults to their indices.
        lpips: an LPIPS function from :func:`reconlab.decoder.perceptual.load_lpips`, or None.
    """
    if len(test) == 0:
        raise ValueError("decoder evaluation: the test split of the feature cache is empty")
    model.eval()
    per: dict[str, dict[str, list[float]]] = {m: {k: [] for k in METRICS} for m in METHODS}
    lpips_values: list[float] = []
    samples: dict[str, list[torch.Tensor]] = {"target": [], "pred": [], "bicubic": [], "mean": []}
    for start in range(0, len(test), cfg.eval_batch_size):
        idx = torch.arange(start, min(start + cfg.eval_batch_size, len(test)))
        x = test.batch_features(idx, device, cfg.channels_last)
        with prec.autocast():
            pred = model(x).rgb
        pred = pred.float().clamp(0, 1).cpu()
        target = test.batch_images(idx, torch.device("cpu"))
        outputs = {
            "decoder": pred,
            "bicubic": bicubic_thumbnail(target, test.grid),
            "mean": train_mean.expand_as(target),
        }
        for method, out in outputs.items():
            for k, v in per_image_metrics(out, target).items():
                per[method][k].extend(v.tolist())
        if lpips is not None:
            lpips_values.extend(lpips(pred, target).tolist())
        room = cfg.max_samples - sum(len(t) for t in samples["target"])
        if room > 0:
            for name, images in (("target", target), ("pred", pred)):
                samples[name].append(to_uint8(images[:room]))
            samples["bicubic"].append(to_uint8(outputs["bicubic"][:room]))
            samples["mean"].append(to_uint8(outputs["mean"][:room]))

    summary: dict = {"n_test": len(test)}
    for method, prefix in METHODS.items():
        for k in METRICS:
            stats = summarize(per[method][k], f"{prefix}{k}")
            summary[f"{prefix}{k}"] = stats["mean"]
            summary[f"{prefix}{k}_std"] = stats["std"]
    summary["psnr_capped"] = count_capped(per["decoder"]["psnr"])  # exact, at PSNR_MAX_DB
    summary["gain_over_bicubic_db"] = summary["psnr"] - summary["baseline_bicubic_psnr"]
    summary["gain_over_mean_db"] = summary["psnr"] - summary["baseline_mean_psnr"]
    summary["beats_bicubic"] = summary["gain_over_bicubic_db"] > 0
    summary["verdict"] = verdict(summary["gain_over_bicubic_db"], summary["gain_over_mean_db"])
    summary["lpips"] = summarize(lpips_values)["mean"] if lpips is not None else NO_WEIGHTS
    if lpips is not None:
        summary["lpips_std"] = summarize(lpips_values)["std"]

    names = list(files) if files is not None else [str(i) for i in range(len(test))]
    rows = []
    for i, name in enumerate(names):
        row = {"index": i, "file": name}
        for method, prefix in METHODS.items():
            row.update({f"{prefix}{k}": per[method][k][i] for k in METRICS})
        if lpips is not None:
            row["lpips"] = lpips_values[i]
        rows.append(row)
    stacked = {
        k: torch.cat(v) if v else torch.empty(0, dtype=torch.uint8) for k, v in samples.items()
    }
    return Evaluation(summary, rows, stacked)


def verdict(gain_bicubic: float, gain_mean: float) -> str:
    """One plain sentence on what the decoder recovered, relative to the baselines."""
    if math.isnan(gain_bicubic):
        return "no test images"
    if gain_bicubic > 0:
        return f"beats the bicubic thumbnail by {gain_bicubic:.2f} dB"
    if gain_mean > 0:
        return (
            f"does NOT beat the bicubic thumbnail ({gain_bicubic:+.2f} dB): it recovers less than "
            f"a patch-grid thumbnail holds (but beats the mean image by {gain_mean:.2f} dB)"
        )
    return (
        f"does NOT beat the bicubic thumbnail ({gain_bicubic:+.2f} dB) nor the mean image "
        f"({gain_mean:+.2f} dB)"
    )


def per_sample_fields(has_lpips: bool) -> list[str]:
    fields = ["index", "file"] + [f"{p}{k}" for p in METHODS.values() for k in METRICS]
    return fields + (["lpips"] if has_lpips else [])
