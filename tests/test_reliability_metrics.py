"""Non-finite values: one policy (PSNR capped at PSNR_MAX_DB and counted), refused elsewhere."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from reconlab.cli import main
from reconlab.evaluation.image_metrics import PSNR_MAX_DB, per_image_metrics, summarize
from reconlab.io import read_csv, write_json
from reconlab.tokenizer.jpeg import compare_to_jpeg, jpeg_curve


def test_exact_reconstruction_gives_the_capped_psnr_not_inf():
    x = torch.rand(3, 3, 16, 16)
    y = x.clone()
    y[1, 0, 0, 0] += 0.5  # one imperfect image
    psnr = per_image_metrics(y, x)["psnr"]
    assert psnr[0].item() == psnr[2].item() == PSNR_MAX_DB == 100.0
    assert torch.isfinite(psnr).all() and 20 < psnr[1].item() < PSNR_MAX_DB


def test_black_frames_through_the_jpeg_baseline_cli_are_capped_and_counted(tmp_path, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    smooth = np.repeat(np.linspace(0, 255, 96, dtype=np.uint8)[None, :, None], 96, 0)
    Image.fromarray(np.repeat(smooth, 3, 2)).save(src / "smooth.png")
    Image.fromarray(np.zeros((96, 96, 3), np.uint8)).save(src / "black.png")
    data = {"source": str(src), "crop_size": 64, "crops_per_image": 1, "resize_shorter": 64}
    data["splits"] = {"train": 0.0, "val": 0.0, "test": 1.0}
    assert main(["prepare-images", "--params", json.dumps(data), "--out", str(tmp_path / "p")]) == 0
    tok = {"jpeg": {"qualities": [5, 50, 90]}, "eval": {"resolutions": [64]}}
    args = ["tokenizer-jpeg", "--params", json.dumps(tok), "--data-source", str(src)]
    args += ["--manifest", str(tmp_path / "p" / "manifest.csv"), "--out", str(tmp_path / "j.csv")]
    assert main(args) == 0, capsys.readouterr().err
    rows = read_csv(tmp_path / "j.csv")
    assert [int(r["quality"]) for r in rows] == [5, 50, 90]
    for r in rows:
        assert math.isfinite(float(r["psnr"])) and float(r["psnr"]) <= PSNR_MAX_DB
    # The black frame survives JPEG exactly at q50 and q90 (PSNR was inf there): counted as capped.
    assert [int(r["psnr_capped"]) for r in rows] == [0, 1, 1]
    # A tokenizer point compared against this curve stays finite (was -inf).
    curve = [{k: float(v) for k, v in r.items()} for r in rows]
    cmp = compare_to_jpeg(curve, float(rows[1]["bpp"]), 30.0)
    assert math.isfinite(cmp["delta_db"])
    write_json(tmp_path / "cmp.json", cmp)


def test_jpeg_curve_of_identical_images_reports_the_cap():
    rows = jpeg_curve([np.zeros((32, 32, 3), np.uint8)] * 2, [90])
    assert rows[0]["psnr"] == PSNR_MAX_DB and rows[0]["psnr_capped"] == 2


def test_write_json_names_the_non_finite_key_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"ok": 1.0})
    before = path.read_bytes()
    bad = {"variants": {"f4-FSQ8.8.8.8.8.8": {"delta_db": -math.inf}}, "n": 3}
    with pytest.raises(
        ValueError, match=r"summary.json: variants.f4-FSQ8.8.8.8.8.8.delta_db is -inf"
    ):
        write_json(path, bad)
    with pytest.raises(ValueError, match=r"rows\[1\].psnr is nan"):
        write_json(path, {"rows": [{"psnr": 1.0}, {"psnr": math.nan}]})
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary left


def test_summarize_refuses_nan_naming_the_metric():
    assert summarize([1.0, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 2}
    with pytest.raises(ValueError, match=r"baseline_bicubic_psnr: 1 of 3 values are not finite"):
        summarize([1.0, math.nan, 2.0], "baseline_bicubic_psnr")
