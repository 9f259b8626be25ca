"""aggregate_sparse on a hand-made two-round grid: matrix, ranking, greedy path, summary, metrics.

The grid's numbers are chosen so every output can be checked by hand (the smoke pipeline runs the
same code on a trained grid, slowly)."""

from __future__ import annotations

import csv
import json

import pytest

from reconlab.figures import read_audit
from reconlab.report.context import ReportContext
from reconlab.report.sections import sparse as report_section
from reconlab.sparse.aggregate import aggregate
from reconlab.sparse.curve import learning_curve_figure

# mean test PSNR per cell (dB); val is 0.5 dB lower; seeds 0/1 add -0.1/+0.1
CELLS = {"baseline": 20.0, "ema": 22.0, "adaln": 19.0, "adaln+ema": 23.0, "fixedq": 10.0,
         "stored": 19.5}  # fmt: skip
FAMILY_OFFSET = {"sinusoid": 1.0, "radial": -1.0}


def _split(psnr: float) -> dict:
    return {
        "all": {"psnr": psnr, "psnr_unclamped": psnr, "mse": 0.01, "mae": 0.05, "corr": 0.9},
        "by_family": {f: {"psnr": psnr + d} for f, d in FAMILY_OFFSET.items()},
    }


def _point(step, psnr):
    by_family = {f: psnr + d for f, d in FAMILY_OFFSET.items()}
    return {"step": step, "examples": 4 * step, "psnr": psnr, "psnr_by_family": by_family}


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def grid(tmp_path):
    for cell, psnr in CELLS.items():
        for seed, jitter in ((0, -0.1), (1, 0.1)):
            run = {"test": _split(psnr + jitter), "val": _split(psnr - 0.5 + jitter)}
            run.update(train_seconds=2.0, parameters=1000, started=seed, finished=10 + seed)
            run.update(cell=cell, seed=seed)
            if cell == "baseline":  # the learning curve's first cell
                run["curve"] = [_point(10, 15.0 + jitter), _point(20, psnr + jitter)]
            _write(tmp_path / "cells" / cell / f"seed{seed}" / "metrics.json", run)
            final = {
                "test": _split(31.0 + jitter),
                "val": _split(30.5 + jitter),
                "cell": "adaln+ema",
            }
            final.update(
                seed=seed, techniques=["adaln", "ema"], train_seconds=30.0, parameters=1000
            )
            final.update(started=20, finished=50 + seed, curve=[_point(40, 25.0), _point(80, 31.0)])
            final["config"] = {"train": {"steps": 80, "batch_size": 4}, "model": {"width": 32}}
            _write(tmp_path / "final" / f"seed{seed}" / "metrics.json", final)
    rounds = [
        {"round": 1, "cells": ["baseline", "ema", "adaln"], "best_so_far": "ema"},
        {"round": 2, "cells": ["adaln+ema"], "best_so_far": "adaln+ema"},
    ]
    for r, best in zip(rounds, (21.5, 22.5), strict=True):
        _write(tmp_path / "rounds" / f"round{r['round']}.json", {**r, "best_so_far_psnr": best})
    linear = {"sinusoid": {"psnr": 21.0}, "radial": {"psnr": 25.0}}
    base = {
        "mean": {"all": {"psnr": 8.0}, "by_family": {f: {"psnr": 8.0} for f in FAMILY_OFFSET}},
        "linear": {"all": {"psnr": 23.0}, "by_family": linear},
        "family_fit": {"by_family": {"sinusoid": {"psnr": 40.0}, "radial": "no closed form"}},
    }
    _write(tmp_path / "baselines.json", {"test": base})
    _write(tmp_path / "overfit.json", {"psnr": 35.0})
    return tmp_path


def test_aggregate_writes_every_table_and_the_dvc_metrics(grid):
    section = {
        "grid": {
            "rounds": 2, "seeds": [0, 1], "fixed_query_ablation": True,
            "stored_data_ablation": True,
            "eval_split": "test", "select_split": "val",
        }
    }  # fmt: skip
    out = grid / "results" / "sparse"
    rounds = [grid / "rounds" / f"round{k}.json" for k in (1, 2)]
    cells = sorted(grid.glob("cells/*/seed*/metrics.json"))
    final = sorted(grid.glob("final/seed*/metrics.json"))
    s = aggregate(section, rounds, cells, final, grid / "baselines.json",
                  grid / "overfit.json", out, grid / "sparse.json")  # fmt: skip

    with open(out / "performance_matrix.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["cell"] for r in rows] == [
        "adaln+ema",
        "ema",
        "baseline",
        "stored",
        "adaln",
        "fixedq",
    ]
    assert float(rows[0]["psnr"]) == 23.0 and float(rows[0]["psnr_std"]) == pytest.approx(0.1414)
    assert rows[0]["round"] == "2" and rows[0]["psnr_sinusoid"] == "24.0"

    ranking = {
        r["technique"]: r
        for r in json.loads((out / "technique_ranking.json").read_text())["ranking"]
    }
    assert ranking["ema"]["gain_db"] == 2.0 and ranking["ema"]["beneficial"] is True
    assert ranking["adaln"]["beneficial"] is False and ranking["ema"]["test_gain_db"] == 2.0

    best = json.loads((out / "best_combinations.json").read_text())
    assert [p["best_so_far"] for p in best["greedy_path"]] == ["ema", "adaln+ema"]
    assert "fixedq" not in [r["cell"] for r in best["top_by_test_psnr"]]
    assert (out / "improvement_heatmap.png").stat().st_size > 0

    assert s["best_cell"] == "adaln+ema" and s["best_psnr"] == 23.0
    assert s["best_psnr_by_family"] == {"sinusoid": 24.0, "radial": 22.0}
    assert s["best_baseline_method_by_family"] == {"sinusoid": "linear", "radial": "linear"}
    assert s["families_above_best_baseline"] == 1  # sinusoid 24 > 21; radial 22 < 25
    assert s["fixed_query_ablation_psnr"] == 10.0 and s["fixed_query_ablation_collapsed"] is False
    assert s["beneficial_techniques"] == ["ema"] and s["seeds"] == [0, 1]
    assert s["grid_train_seconds"] == 24.0 and s["grid_wall_s"] == 11.0  # 6 cells x 2 seeds
    assert s["stored_data_ablation_psnr"] == 19.5
    # the final cell, apart from the grid's best: adaln+ema retrained, 31 dB
    f = s["final_cell"]
    assert f["from_cell"] == "adaln+ema" and f["psnr"] == 31.0 and f["steps"] == 80
    assert f["psnr_by_family"] == {"sinusoid": 32.0, "radial": 30.0}
    assert f["margin_over_best_baseline_by_family"] == {"sinusoid": 11.0, "radial": 5.0}
    assert s["targets"]["final_sinusoid_psnr_at_least_30db"] is True
    assert s["targets"]["overfit_psnr_at_least_40db"] is False  # 35 dB
    assert s["grid_targets"]["sinusoid_psnr_at_least_30db"] is False  # the grid's best: 24 dB
    assert s["study_wall_s"] == 51.0
    with open(out / "learning_curve.csv") as fh:
        curve = list(csv.DictReader(fh))
    assert [(r["cell"], r["examples"]) for r in curve] == [
        ("baseline", "40"),
        ("baseline", "80"),
        ("final", "160"),
        ("final", "320"),
    ]
    assert float(curve[-1]["psnr_radial"]) == 30.0
    assert s["learning_curve_endpoints"]["final"]["psnr"] == 31.0
    assert json.loads((out / "summary.json").read_text()) == s

    m = json.loads((grid / "sparse.json").read_text())
    assert m["best_psnr"] == 23.0 and m["overfit_psnr"] == 35.0
    assert m["family_fit_psnr_sinusoid"] == 40.0 and "family_fit_psnr_radial" not in m
    assert m["best_baseline_psnr_sinusoid"] == 21.0 and m["compute"]["precision"] == "unknown"
    assert m["final_psnr_sinusoid"] == 32.0 and m["final_psnr_radial"] == 30.0
    assert m["curve_final_examples"] == 320 and m["curve_baseline_psnr"] == 20.0
    assert m["stored_data_ablation_psnr"] == 19.5

    html = report_section.render(ReportContext(grid / "results", grid))
    assert "adaln+ema" in html and "no closed form" in html  # the limit column says why not
    assert "NOT met" in html  # the overfit check: 35 dB < 40 dB
    assert html.count("data:image/") == 2  # heatmap and learning curve (no sample grids here)


def test_learning_curve_figure_on_less_than_a_decade_has_no_overlapping_ticks(tmp_path):
    # The smoke run's curve spans 4..32 examples: matplotlib would label the minor ticks
    # (4x10^0, 6x10^0, ...) and they overlap; the figure shows decade labels only.
    families = ["sinusoid", "multi_freq", "radial", "interference", "modulated", "composite"]
    rows = [
        {"cell": c, "examples": n, "psnr": 14 + n / 40, **{f"psnr_{f}": 14.0 for f in families}}
        for c, ns in (("baseline", (4, 12, 24)), ("final", (8, 16, 32)))
        for n in ns
    ]
    learning_curve_figure(tmp_path / "curve.png", rows, families, "learning curve")
    audit = read_audit(tmp_path / "curve.png")
    assert audit["overlapping_ticks"] == [] and audit["small_text"] == []
