"""The `reconlab` command: help, one-line errors, the report."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, project_env

from reconlab.cli import main


def test_help_lists_every_stage_command(capsys):
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    for command in ["prepare-images", "make-fields", "summarize-data", "report", "sync", "record"]:
        assert command in out


def test_bad_overlay_is_one_line_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fields:\n  size: 4\n")
    code = main(
        [
            "make-fields",
            "--config",
            str(ROOT / "params.yaml"),
            "--configfile",
            str(bad),
            "--out",
            str(tmp_path / "f"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == "reconlab make-fields: error: params: fields.size: 4 is out of range (minimum 8)"
    assert not (tmp_path / "f").exists()


def test_params_json_is_validated(tmp_path, capsys):
    code = main(["make-fields", "--params", '{"size": 16, "colour": 1}', "--out", str(tmp_path)])
    assert code == 1
    assert "fields.colour: unknown key" in capsys.readouterr().err


def test_make_fields_by_hand_with_overlay(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconlab.cli",
            "make-fields",
            "--config",
            "params.yaml",
            "--configfile",
            "config/smoke.yaml",
            "--out",
            str(tmp_path / "fields"),
        ],
        cwd=ROOT,
        env=project_env(ROOT),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "{'train': 24, 'val': 12, 'test': 12} fields of 32x32" in proc.stdout


def test_report_of_an_empty_results_folder_has_no_sections(tmp_path):
    from reconlab.report.build import build_report

    out = tmp_path / "index.html"
    assert build_report(tmp_path / "results", tmp_path / "metrics", out) == []
    assert out.read_text().startswith("<!doctype html>")


def test_bad_params_fail_before_a_command_imports_torch(tmp_path):
    """Every compute command validates its section first: a typo costs a fraction of a second,
    not the seconds of torch/torchmetrics imports (measured: tokenizer-jpeg 6.1 s -> 0.26 s)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("tokenizer:\n  eval:\n    frechet: {inception_features: 100}\n")
    script = (
        "import sys; from reconlab.cli import main; "
        f"rc = main(['tokenizer-jpeg', '--configfile', {str(bad)!r}, '--manifest', 'm.csv', "
        "'--data-source', 'skimage', '--out', 'j.csv']); "
        "print(rc, 'torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=project_env(ROOT),
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert proc.stdout.split() == ["1", "False"]
    assert proc.stderr.strip().splitlines() == [
        "reconlab tokenizer-jpeg: error: params: tokenizer.eval.frechet.inception_features: "
        "100 is not allowed; choose one of [64, 192, 768, 2048]"
    ]
