"""The tokenizer rules under real Snakemake on the smoke config: outputs and rerun sets."""

from __future__ import annotations

import json

import torch
import yaml
from conftest import SMOKE, metrics_file, planned_jobs

TOKENIZER_JOBS = {"train_tokenizer", "evaluate_tokenizer", "jpeg_baseline", "summarize_tokenizer"}


def test_tokenizer_rules_run_and_rerun_by_content(smoke_copy):
    p = smoke_copy  # the smoke run's tokenizer stage; edits below change only this copy
    metrics = json.loads(metrics_file(p, "tokenizer", *SMOKE).read_text())
    smoke = yaml.safe_load((p / "config/smoke.yaml").read_text())["tokenizer"]
    assert set(metrics["variants"]) == {v.replace(".", "_") for v in smoke["variants"]}
    from reconlab.runtime import compute_record, precision_for

    here = compute_record(precision_for(torch.device("cpu"), "auto", kind="conv"))
    assert metrics["compute"] == {
        k: here[k] for k in ("device", "precision", "cpu_capability", "torch")
    }
    for variant in smoke["variants"]:
        for res in [*smoke["eval"]["resolutions"], "native"]:
            r = json.loads((p / f"results/tokenizer/{variant}/eval_{res}.json").read_text())
            # offline: FID/FDD computed from seeded random weights, marked untrained
            assert isinstance(r["fid"], float) and isinstance(r["fdd"], float)
            assert r["fid_untrained"] and r["fdd_untrained"] and r["fid_weights"] == "random:0"
            assert r["fid_samples"] == r["fdd_samples"] >= 2 and len(r["fid_ci"]) == 2
            assert r["fid_features"] == smoke["eval"]["frechet"]["inception_features"] == 64
        assert not (p / f"results/tokenizer/{variant}/.ckpt").exists()  # deleted when done
    for fig in ("psnr_vs_bpp.png", "resolution_scaling.png", "rd_curve.png", "summary.csv",
                "native.csv", "native_buckets.csv"):  # fmt: skip
        assert (p / "results/tokenizer" / fig).stat().st_size > 0
    assert not planned_jobs(p, "summarize_tokenizer", *SMOKE) & TOKENIZER_JOBS

    # JPEG qualities: the baseline and the summary rerun, no training, no evaluation.
    path = p / "config/smoke.yaml"
    original = path.read_text()
    data = yaml.safe_load(original)
    data["tokenizer"]["jpeg"]["qualities"] = [10, 60]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    jobs = planned_jobs(p, "summarize_tokenizer", *SMOKE)
    assert jobs & TOKENIZER_JOBS == {"jpeg_baseline", "summarize_tokenizer"}

    # An evaluation setting (tiling, FID): evaluation reruns; training and the JPEG curve,
    # which reads only eval.resolutions / reference_resolution, do not.
    for key, value in (("overlap", 0), ("frechet", {"bootstrap": 20})):
        data = yaml.safe_load(original)
        data["tokenizer"]["eval"][key] = value
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        jobs = planned_jobs(p, "summarize_tokenizer", *SMOKE)
        assert jobs & TOKENIZER_JOBS == {"evaluate_tokenizer", "summarize_tokenizer"}, key

    # An evaluated resolution: the JPEG curve follows it.
    data = yaml.safe_load(original)
    data["tokenizer"]["eval"]["resolutions"] = [32, 64]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    jobs = planned_jobs(p, "summarize_tokenizer", *SMOKE)
    assert {"jpeg_baseline", "evaluate_tokenizer"} <= jobs and "train_tokenizer" not in jobs

    # A training setting: everything of the stage reruns except the JPEG baseline.
    data = yaml.safe_load(original)
    data["tokenizer"]["train"]["steps"] = 5
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    jobs = planned_jobs(p, "summarize_tokenizer", *SMOKE)
    assert jobs & TOKENIZER_JOBS == TOKENIZER_JOBS - {"jpeg_baseline"}
    path.write_text(original)
