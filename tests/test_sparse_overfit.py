"""Capacity check: the flow-matching model fits one field to >= 40 dB over all 1024 pixels."""

import numpy as np
import pytest
import torch

from reconlab.data.fields import make_field
from reconlab.sparse.train import field_metrics, overfit_one_field


@pytest.mark.slow
def test_overfit_one_field_reaches_40_db():
    torch.set_num_threads(1)
    field = make_field("sinusoid", 32, np.random.default_rng([0, 0, 0, 0]))[None]
    cfg = {
        "mask_seed": 0,
        "observed": 51,
        "queries": 200,
        "fixed_queries": False,
        "eval_splits": ["train"],
        "model": {
            "backbone": "transformer",
            "width": 32,
            "heads": 4,
            "enc_layers": 1,
            "dec_layers": 1,
            "distance_bias": True,
            "kernel_prior": "none",
            "prediction": "velocity",
            "fourier": {"kind": "fixed", "features": 32, "scale": 3.0, "octaves": 6},
        },
        "train": {
            "steps": 1,
            "batch_size": 8,
            "lr": 1e-2,
            "weight_decay": 0.0,
            "checkpoint_every": 0,
            "device": "cpu",
            "precision": "fp32",
        },
        "sampler": {"method": "euler", "steps": 10, "start": "median"},
        "techniques": {},
    }
    pred, history = overfit_one_field(cfg, field, steps=1500, lr=1e-2, batch_size=8)
    psnr = float(field_metrics(pred, field)["psnr"][0])
    assert pred.shape == field.shape
    assert history["loss"][-1] < history["loss"][0]
    assert psnr >= 40.0, f"one-field overfit reached only {psnr:.2f} dB"
