"""`reconlab compare REV_A REV_B`: two recorded revisions side by side, offline."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from conftest import run

from reconlab.compare import metric_rows, param_changes


def test_metric_and_param_differences():
    a = {"metrics/decoder.json": '{"dinov2": {"psnr": 11.25, "ssim": 0.1}, "run": {"x": 1}}'}
    b = {"metrics/decoder.json": '{"dinov2": {"psnr": 12.5, "ssim": 0.1}, "run": {"x": 2}}'}
    rows = metric_rows(a, b)
    assert [(r["metric"], r["delta"], r["changed"]) for r in rows] == [
        ("dinov2.psnr", 1.25, True),
        ("dinov2.ssim", 0.0, False),
    ]  # changed first; the run block is provenance, not a metric
    params = param_changes({"params.yaml": "decoder:\n  lr: 0.001\n  epochs: 3\n"},
                           {"params.yaml": "decoder:\n  lr: 0.003\n  epochs: 3\n"})  # fmt: skip
    assert params == [{"file": "params.yaml", "key": "decoder.lr", "a": 0.001, "b": 0.003}]


@pytest.mark.slow
def test_compare_two_recorded_revisions(smoke_copy: Path, tmp_path: Path):
    repo = smoke_copy
    for args in (["init", "-q"], ["config", "user.email", "t@example.org"],
                 ["config", "user.name", "test"]):  # fmt: skip
        run(["git", *args], repo)
    dvc = [sys.executable, "-m", "dvc"]
    run([*dvc, "commit", "-f", "-q"], repo)  # what `reconlab record` runs: outputs into the cache
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "first run"], repo)
    params = repo / "params.yaml"
    head, decoder = params.read_text().split("\ndecoder:", 1)
    params.write_text(
        head + "\ndecoder:" + re.sub(r"\n  lr: 0\.001\b", "\n  lr: 0.003", decoder, count=1)
    )
    run(["git", "commit", "-qam", "decoder lr"], repo)

    out = tmp_path / "compare.html"
    cmd = [sys.executable, "-m", "reconlab.cli", "compare", "HEAD~1", "HEAD", "--out", str(out)]
    printed = run(cmd, repo).stdout
    assert "1 params changed" in printed
    html = out.read_text()
    assert re.search(r">decoder\.lr</td><td[^>]*>0\.001</td><td[^>]*>0\.003</td>", html)
    figures = re.findall(r'<img src="data:image/png;base64,', html)
    n = int(re.search(r"(\d+) figures", printed).group(1))
    assert n >= 5 and len(figures) == 2 * n  # every figure of both revisions, side by side
    assert "not recorded" not in html and "<script" not in html  # offline, static
    # the smoke configuration's own metrics, recorded by DVC, are compared too
    assert re.search(r">results/metrics/smoke/decoder</td><td[^>]*>dinov2_s14\.psnr<", html)

    bad = run([*cmd[:4], "nope", "HEAD"], repo, check=False)
    assert bad.returncode == 1 and "'nope' is not a revision" in bad.stderr
