"""The diagnostics rules in the shared smoke run (real Snakemake, random-weight backbones)."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import SMOKE, metrics_file, planned_jobs

OVERLAYS = SMOKE
TARGET = "summarize_diagnostics"  # its metrics: results/metrics/<configuration>/
STAGE = {"dino_diagnostics", "compare_backbones", "summarize_diagnostics"}


@pytest.mark.slow
def test_diagnostics_rules_outputs_and_reruns(smoke_copy):
    p = smoke_copy  # the smoke run's diagnostics: the default DINOv2 / DINOv3 pair
    for b in ("dinov2_s14", "dinov3_s16"):
        m = json.loads((p / f"results/diagnostics/{b}/metrics.json").read_text())
        assert m["untrained"] is True and m["weights"] == "random:0"
        for key in ("smoothness_mean", "retrieval_recall_at_1_cls", "retrieval_recall_at_1_mean"):
            assert isinstance(m[key], float)
        assert (p / f"results/diagnostics/{b}/maps.png").stat().st_size > 0
    assert not (p / "results/diagnostics/dinov2_s14_reg").exists()
    pair = json.loads((p / "results/diagnostics/compare/dinov2_s14--dinov3_s16.json").read_text())
    # Smoke: image_size 64 gives 56 px (4x4 patches of 14) and 64 px (4x4 patches of 16).
    assert pair["grid"] == [4, 4]
    assert {b: e["cell_pixels"] for b, e in pair["per_backbone"].items()} == {
        "dinov2_s14": [14.0, 14.0],
        "dinov3_s16": [16.0, 16.0],
    }
    summary = json.loads(metrics_file(p, "diagnostics", *OVERLAYS).read_text())
    assert set(summary["backbones"]) == {"dinov2_s14", "dinov3_s16"}
    assert planned_jobs(p, TARGET, *OVERLAYS) == set()

    # A diagnostics value reruns the diagnostics, never the feature caches.
    diag = p / "config" / "smoke.yaml"
    original = diag.read_text()
    overlay = yaml.safe_load(original)
    overlay["diagnostics"]["remove_directions"] = 2
    diag.write_text(yaml.safe_dump(overlay))
    assert planned_jobs(p, TARGET, *OVERLAYS) == STAGE
    diag.write_text(original)

    # Editing a diagnostics module reruns the same set; the cache code is untouched.
    pca = p / "src/reconlab/diagnostics/pca.py"
    pca.write_text(pca.read_text() + "\n# an edit\n")
    assert planned_jobs(p, TARGET, *OVERLAYS) == {
        "dino_diagnostics",
        "compare_backbones",
        "summarize_diagnostics",
    }
