"""The decoder stage through real Snakemake on the smoke config: outputs, reruns, report, CLI."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import SMOKE, metrics_file, planned_jobs, run

# The smoke run's backbones (config/smoke.yaml's list); the decoder rules expand over them.
BACKBONES = ["dinov2_s14", "dinov3_s16"]


def overlay(project: Path, name: str, text: str) -> list[str]:
    (project / name).write_text(text)
    return [*SMOKE, name]


def test_smoke_pipeline_trains_evaluates_and_reruns_only_the_decoder(smoke_copy):
    project, smoke = smoke_copy, SMOKE  # the smoke run's decoder stage; edits touch the copy
    small = json.loads(metrics_file(project, "decoder", *smoke).read_text())
    assert sorted(small) == sorted([*BACKBONES, "compute", "run"])
    # where and how it ran: the precision auto resolved to on this machine, one block for all
    from reconlab.runtime import compute_record, precision_for

    here = compute_record(precision_for(torch.device("cpu"), "auto", kind="conv"))
    assert small["compute"] == {
        k: here[k] for k in ("device", "precision", "cpu_capability", "torch")
    }
    for backbone in BACKBONES:
        folder = project / "results/decoder" / backbone
        m = json.loads((folder / "metrics.json").read_text())
        for key in ("psnr", "ssim", "mae", "mse", "baseline_bicubic_psnr", "baseline_mean_psnr"):
            assert isinstance(m[key], float), key
        assert m["weights"] == "random:0" and m["untrained"] is True
        assert m["lpips"].startswith("not computed: ")
        assert m["gain_over_bicubic_db"] == pytest.approx(m["psnr"] - m["baseline_bicubic_psnr"])
        assert small[backbone]["psnr"] == pytest.approx(m["psnr"], abs=1e-3)
        log = list(csv.DictReader(open(folder / "train_log.csv")))
        assert [r["epoch"] for r in log] == ["1", "2", "3"]  # smoke: 3 epochs
        samples = sorted(p for p in (folder / "samples").iterdir() if not p.name.startswith("."))
        assert len(samples) == 2  # smoke: max_samples 2
        for sample in samples:
            names = {p.name for p in sample.iterdir()}
            assert names == {"pred.png", "target.png", "compare_pred_target.png"}
        assert (folder / "loss_plot.png").stat().st_size > 0
        assert not (folder / ".ckpt").exists()  # the checkpoint is deleted once the outputs exist
        per_sample = list(csv.DictReader(open(folder / "per_sample.csv")))
        assert len(per_sample) == m["n_test"]

    table = list(csv.DictReader(open(project / "results/decoder/comparison.csv")))
    assert [r["backbone"] for r in table] == BACKBONES

    # changing only decoder.lr retrains and re-evaluates, never touches the feature cache
    lr = overlay(project, "lr.yaml", "decoder:\n  lr: 0.002\n")
    assert planned_jobs(project, "summarize_decoder", *lr) == {
        "train_decoder",
        "evaluate_decoder",
        "summarize_decoder",
    }
    # an evaluation-only key re-evaluates without retraining
    ms = overlay(project, "ms.yaml", "decoder:\n  max_samples: 1\n")
    assert planned_jobs(project, "summarize_decoder", *ms) == {
        "evaluate_decoder",
        "summarize_decoder",
    }
    assert planned_jobs(project, "summarize_decoder", *smoke) == set()

    # the report section shows every backbone with its untrained badge and both baselines
    code = (
        "from pathlib import Path; from reconlab.report.context import ReportContext;"
        "from reconlab.report.sections import decoder;"
        "print(decoder.render(ReportContext(Path('results'), Path('metrics'))))"
    )
    html = run([sys.executable, "-c", code], project).stdout
    for backbone in BACKBONES:
        assert backbone in html
    assert html.count('class="untrained"') >= 2 * len(BACKBONES)
    assert "bicubic thumbnail PSNR" in html and "mean image PSNR" in html
    assert "data:image/" in html  # inlined (PNG or lossless WebP)


def test_cli_error_messages(tmp_path, capsys):
    from reconlab.cli import main

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("file\n")
    base = ["--features", str(tmp_path / "nope"), "--manifest", str(manifest), "--out", "o"]
    assert main(["train-decoder", "--params", "{}", *base]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no feature cache index" in err and "nope" in err
    assert main(["train-decoder", "--params", '{"norm": "layer"}', *base]) == 1
    err = capsys.readouterr().err.strip()
    assert "decoder.norm: 'layer' is not allowed" in err
