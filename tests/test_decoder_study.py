"""The decoder stage in-process, end to end on a tiny real cache: train, evaluate, summarize.

The same path the `train-decoder`, `evaluate-decoder` and `summarize-decoder` rules take
(test_decoder_workflow.py runs them through Snakemake, slowly); here in seconds."""

from __future__ import annotations

import csv
import json

from reconlab.config import DecoderConfig, from_section, validate_params
from reconlab.decoder.study import load_trained, run_evaluation, run_training
from reconlab.decoder.summary import SUMMARY_KEYS, summarize_study
from reconlab.report.context import ReportContext
from reconlab.report.sections import decoder as report_section

TINY = {"epochs": 2, "batch_size": 2, "width": 8, "depth": 1, "checkpoint_every": 100}


def test_train_evaluate_summarize(tiny_feature_cache, tmp_path):
    section = validate_params({"decoder": {**TINY, "device": "cpu", "precision": "fp32"}})
    cfg = from_section(DecoderConfig, section["decoder"])
    cache, prepared, out = (
        tiny_feature_cache / "cache",
        tiny_feature_cache / "prepared",
        tmp_path / "results" / "decoder" / "vit",
    )
    info = run_training(cfg, cache, prepared, out, progress=False)
    assert info["backbone_id"] == "vit" and info["steps"] > 0 and info["features"]["shards"]
    assert json.loads((out / "train.json").read_text())["n_train"] == info["n_train"]
    model, saved = load_trained(out / "model.safetensors", "cpu")
    assert saved["parameters"] == sum(p.numel() for p in model.parameters())

    metrics = run_evaluation(cfg, cache, prepared, out / "model.safetensors", out)
    # the cache's provenance, as every metrics file computed from it records it
    assert metrics["weights"] == "random:0" and metrics["untrained"] is True
    assert metrics["grid"] == [2, 2] and metrics["patch_size"] == 14
    assert 0 < metrics["psnr"] < 60 and 0 <= metrics["mae"] <= 1
    with open(out / "per_sample.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == metrics["n_test"] == 1  # 4 photos: 2 train, 1 val, 1 test crop
    assert metrics["psnr_std"] is None or metrics["psnr_std"] == 0  # one image: no spread
    assert [p.name[:4] for p in (out / "samples").iterdir()] == ["000_"]
    assert (out / "comparison.png").stat().st_size > 0

    table = out.parent / "comparison.csv"
    rows = summarize_study([out / "metrics.json"], tmp_path / "decoder.json", table)
    assert [r["backbone"] for r in rows] == ["vit"]
    small = json.loads((tmp_path / "decoder.json").read_text())
    assert small["vit"] == {k: round(float(metrics[k]), 4) for k in SUMMARY_KEYS}

    html = report_section.render(ReportContext(tmp_path / "results", tmp_path))
    assert "vit" in html and "random:0" in html and html.count("data:image/") >= 2
