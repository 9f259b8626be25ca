"""`reconlab status`: Snakemake's reasons to rerun, in words, next to `dvc status`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BIN, SMOKE, run

from reconlab.status import Job, explain, parse_dry_run

DRY_RUN = """
[Sun Nov 29 20:23:34 2026]
rule train_decoder:
    input: data/features/dinov3_s16, data/prepared/manifest.csv
    output: results/decoder/dinov3_s16/model.safetensors, results/decoder/dinov3_s16/train.json
    jobid: 14
    reason: Params have changed since last execution: Union of exclusive params before and now across all output: before: '{"epochs":3,"loss":{"l1":1.0},"lr":0.001}', 'train-decoder:0123456789abcdef' now: '{"epochs":3,"loss":{"l1":0.5},"lr":0.003}', 'train-decoder:fedcba9876543210'
    wildcards: backbone=dinov3_s16
    resources: tmpdir=/tmp

[Sun Nov 29 20:23:34 2026]
localrule report:
    input: results/decoder/comparison.csv
    output: reports/index.html
    jobid: 0
    reason: Missing output files: reports/index.html; Input files updated by another job: results/decoder/comparison.csv
    resources: tmpdir=/tmp

[Sun Nov 29 20:23:34 2026]
localrule all:
    input: reports/index.html
    jobid: 1
    reason: Input files updated by another job: reports/index.html
"""


def test_dry_run_reasons_become_words(tmp_path):
    jobs = parse_dry_run(DRY_RUN)
    assert [j.name for j in jobs] == ["train_decoder (backbone=dinov3_s16)", "report"]
    config = {"decoder": {"epochs": 3, "loss": {"l1": 0.5}, "lr": 0.003, "eval_batch_size": 8}}
    words = explain(jobs[0], tmp_path, config)
    assert words[0] == "params: decoder.loss.l1 1.0 -> 0.5; decoder.lr 0.001 -> 0.003"
    assert words[1].startswith("code of `reconlab train-decoder` changed: ")
    assert explain(jobs[1], tmp_path, config) == [
        "missing output: reports/index.html",
        "input rebuilt upstream: results/decoder/comparison.csv",
    ]
    assert explain(Job("x", reason="Code has changed since last execution"), tmp_path, None) == [
        "the rule `x` itself (its shell command or code) changed"
    ]


@pytest.mark.slow
def test_status_names_the_edited_param_the_edited_file_and_missing_outputs(smoke_copy: Path):
    reconlab = [sys.executable, "-m", "reconlab.cli", "status", "--configfile", *SMOKE[1:]]
    clean = run(reconlab, smoke_copy).stdout
    assert "nothing to be done" in clean and "dvc status:" in clean

    params = smoke_copy / "params.yaml"
    text = params.read_text()
    head, decoder = text.split("\ndecoder:", 1)
    decoder = re.sub(r"\n  lr: 0\.001\b", "\n  lr: 0.003", decoder, count=1)
    params.write_text(head + "\ndecoder:" + decoder)
    model = smoke_copy / "src/reconlab/decoder/model.py"
    model.write_text(model.read_text() + "\n# edited\n")
    (smoke_copy / "results/sparse/summary.json").unlink()

    out = run([*reconlab, "--no-dvc"], smoke_copy).stdout
    changed = re.findall(r"^train_decoder \(backbone=(\w+)\)\s+params: decoder\.lr 0\.001 -> 0\.003$",
                         out, re.M)  # fmt: skip
    assert len(changed) == 2, out  # every backbone's decoder, with the one edited key
    assert "reconlab/decoder/model.py" in out  # the edited module of train-decoder
    assert "missing output: results/sparse/summary.json" in out
    assert "dvc status" not in out


def test_every_argument_of_every_command_has_help():
    import argparse

    from reconlab.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert "status" in sub.choices
    missing = [
        f"reconlab {name} {'/'.join(a.option_strings) or a.dest}"
        for name, command in sub.choices.items()
        for a in command._actions
        if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()
    ]
    assert missing == []


def test_dvc_status_before_any_record_says_why_everything_is_listed(tmp_path):
    from reconlab.status import NO_LOCK, dvc_status

    assert dvc_status(tmp_path) == "not a DVC project (no .dvc/ folder)"
    subprocess.run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: echo hi\n    deps: [a.txt]\n")
    (tmp_path / "a.txt").write_text("a")
    assert dvc_status(tmp_path).splitlines()[0] == NO_LOCK
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    assert NO_LOCK not in dvc_status(tmp_path)
