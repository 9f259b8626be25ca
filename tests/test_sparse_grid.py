"""The greedy technique grid: naming, round expansion, ranking, and a real checkpoint-driven run."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import SMOKE, SMOKE_METRICS, snakemake_plan

from reconlab.config import validate_params
from reconlab.sparse.grid import (
    cell_name,
    cell_techniques,
    decide_round,
    first_round,
    technique_ranking,
)


def section(**grid):
    s = validate_params({"sparse": {"grid": grid}})["sparse"]
    return s


def runs(*psnrs, split="val"):
    return [{split: {"all": {"psnr": p}}} for p in psnrs]


def test_cell_names_are_canonical():
    assert cell_name([]) == "baseline"
    assert cell_name(["ema", "reflow"]) == "reflow+ema"
    assert cell_techniques("reflow+ema") == ("reflow", "ema")
    assert cell_techniques("fixedq") == ()
    with pytest.raises(ValueError, match="not canonical"):
        cell_techniques("ema+reflow")


def test_first_round_is_baseline_and_singles():
    s = section(techniques=["ema", "adaln", "reflow"])
    assert first_round(s) == ["baseline", "reflow", "adaln", "ema"]


def test_round_expansion_greedy_from_best_and_stops_without_gain():
    s = section(techniques=["ema", "adaln", "reflow"], rounds=3)
    r1 = decide_round(
        s,
        1,
        {
            "baseline": runs(10, 10),
            "reflow": runs(9, 9),
            "adaln": runs(12, 12),
            "ema": runs(11, 11),
        },
        None,
    )
    assert r1["best_so_far"] == "adaln" and r1["next"] == ["reflow+adaln", "adaln+ema"]
    r2 = decide_round(s, 2, {"reflow+adaln": runs(11, 11), "adaln+ema": runs(13, 12)}, r1)
    assert r2["best_so_far"] == "adaln+ema" and r2["cells"]["adaln+ema"]["std"] == pytest.approx(
        0.7071, abs=1e-4
    )
    assert r2["next"] == ["reflow+adaln+ema"]
    r3 = decide_round(s, 3, {"reflow+adaln+ema": runs(12, 12)}, r2)
    assert r3["best_so_far"] == "adaln+ema" and not r3["improved"] and r3["next"] == []
    # the last configured round never asks for more cells
    r2_last = decide_round(
        section(techniques=["ema", "adaln", "reflow"], rounds=2),
        2,
        {"reflow+adaln": runs(11), "adaln+ema": runs(13)},
        r1,
    )
    assert r2_last["next"] == []


def test_beneficial_needs_twice_the_baseline_std():
    scores = {
        "baseline": {"mean": 10.0, "std": 0.5, "n": 3},
        "ema": {"mean": 10.9, "std": 0.1},
        "adaln": {"mean": 11.2, "std": 0.1},
    }
    ranking = {r["technique"]: r for r in technique_ranking(scores)}
    assert not ranking["ema"]["beneficial"] and ranking["adaln"]["beneficial"]
    assert [r["technique"] for r in technique_ranking(scores)] == ["adaln", "ema"]
    scores["baseline"] = {"mean": 10.0, "std": 0.0, "n": 1}
    assert all(r["beneficial"] is None for r in technique_ranking(scores))


def test_pooled_criterion_ignores_a_lucky_near_zero_baseline_std():
    # two seeds that happen to agree give the baseline a tiny std; the other cells show the spread
    scores = {
        "baseline": {"mean": 10.0, "std": 0.002, "n": 2},
        "ema": {"mean": 10.02, "std": 0.1, "n": 2},
        "adaln": {"mean": 10.5, "std": 0.1, "n": 2},
    }
    ranking = {r["technique"]: r for r in technique_ranking(scores)}
    assert ranking["ema"]["beneficial"] and not ranking["ema"]["beneficial_pooled"]
    assert ranking["adaln"]["beneficial_pooled"]
    pooled = ((0.002**2 + 0.1**2 + 0.1**2) / 3) ** 0.5
    assert ranking["adaln"]["pooled_threshold_db"] == pytest.approx(2 * pooled, abs=1e-4)


SPARSE_TARGETS = ["results/sparse/summary.json", str(SMOKE_METRICS / "sparse.json")]


def _jobs(project, *args):
    """(rule, cell) pairs a run would execute, from Snakemake's ``--summary`` plan (the cell is
    read from each sparse_cell output path, ``results/sparse/cells/{cell}/seed{seed}/...``)."""
    jobs = set()
    for row in snakemake_plan(project, *SPARSE_TARGETS, *args, *SMOKE):
        if row["plan"] == "update pending":
            path = Path(row["output_file"])
            cell = path.parts[3] if row["rule"] == "sparse_cell" else None
            jobs.add((row["rule"], cell))
    return jobs


def test_checkpoint_rounds_on_a_tiny_grid(smoke_copy):
    project = smoke_copy  # the smoke run's sparse study (its rounds ran as checkpoints)
    r = project / "results" / "sparse"
    r1 = json.loads((r / "rounds" / "round1.json").read_text())
    assert set(r1["cells"]) == {"baseline", "adaln", "ema"}
    r2 = json.loads((r / "rounds" / "round2.json").read_text())
    best1 = r1["best_so_far"]
    # round 2 was decided by round 1: best-so-far plus each technique it lacks
    expected = (
        []
        if best1 == "baseline"
        else [
            cell_name([*cell_techniques(best1), t])
            for t in ("adaln", "ema")
            if t not in cell_techniques(best1)
        ]
    )
    assert sorted(r2["cells"]) == sorted(expected)
    for cell in [*r1["cells"], *r2["cells"], "fixedq", "stored"]:
        m = json.loads((r / "cells" / cell / "seed0" / "metrics.json").read_text())
        assert set(m["test"]["by_family"]) == {
            "sinusoid",
            "multi_frequency",
            "radial",
            "interference",
            "modulated",
            "composite",
        }
        assert {"psnr", "psnr_unclamped", "mse", "mae", "corr"} <= set(m["test"]["all"])
        assert m["parameters"] > 0 and m["train_seconds"] >= 0
        assert (r / "cells" / cell / "seed0" / "samples.png").stat().st_size > 0
    summary = json.loads((r / "summary.json").read_text())
    for key in (
        "best_cell",
        "best_psnr_by_family",
        "best_baseline_psnr_by_family",
        "family_fit_psnr_by_family",  # the family-aware limit (smoke: methods include family_fit)
        "fixed_query_ablation_psnr",
        "overfit_psnr",
        "grid_wall_s",
    ):
        assert key in summary
    assert summary["family_fit_psnr_by_family"]["modulated"] == "not applicable"
    assert "family_fit" not in summary["best_baseline_method_by_family"].values()
    metrics = json.loads((project / SMOKE_METRICS / "sparse.json").read_text())
    assert set(metrics) >= {"family_fit_psnr_sinusoid", "family_fit_psnr_radial"}
    assert "family_fit_psnr_modulated" not in metrics  # not applicable: no number, no key
    collapsed = summary["fixed_query_ablation_psnr"] <= summary["mean_predictor_psnr"] + 0.5
    assert summary["fixed_query_ablation_collapsed"] is collapsed
    assert set(summary["grid_targets"]) == {
        "sinusoid_psnr_at_least_30db",
        "above_best_baseline_on_4_of_6_families",
    }
    assert set(summary["targets"]) == {
        "final_sinusoid_psnr_at_least_30db",
        "final_above_best_baseline_by_1db_on_6_of_6_families",
        "overfit_psnr_at_least_40db",
        "fixed_query_ablation_collapses",
    }
    # the final cell: the last round's best, retrained with sparse.final, reported apart
    final = json.loads((r / "final" / "seed0" / "metrics.json").read_text())
    assert final["cell"] == r2["best_so_far"] == summary["final_cell"]["from_cell"]
    assert final["config"]["train"]["data"] == "stream"
    assert summary["final_cell"]["steps"] == final["config"]["train"]["steps"]
    assert set(summary["final_cell"]["psnr_by_family"]) == set(summary["best_psnr_by_family"])
    assert summary["stored_data_ablation_psnr"] is not None
    # the learning curve: baseline cell and final cell, each ending at its trained model
    curve = (r / "learning_curve.csv").read_text().splitlines()
    assert {"cell", "step", "examples", "psnr", "psnr_sinusoid"} <= set(curve[0].split(","))
    assert {line.split(",")[0] for line in curve[1:]} == {"baseline", "final"}
    assert (r / "learning_curve.png").stat().st_size > 0
    ends = summary["learning_curve_endpoints"]
    assert ends["final"]["psnr"] == summary["final_cell"]["psnr"]
    assert metrics["final_psnr_sinusoid"] == summary["final_cell"]["psnr_by_family"]["sinusoid"]
    assert metrics["curve_final_examples"] == ends["final"]["examples"]
    for name in (
        "performance_matrix.csv",
        "technique_ranking.json",
        "best_combinations.json",
        "improvement_heatmap.png",
        "learning_curve.png",
    ):
        assert (r / name).stat().st_size > 0
    assert _jobs(project) == set()  # nothing left to do

    # editing one technique's settings reruns only the cells that use it (and what reads them)
    smoke = project / "config" / "smoke.yaml"
    cfg = yaml.safe_load(smoke.read_text())
    cfg["sparse"].setdefault("techniques", {})["ema"] = {"decay": 0.5}
    smoke.write_text(yaml.safe_dump(cfg))
    cells = {c for rule, c in _jobs(project) if rule == "sparse_cell" and c}
    # round 2's cells are only known once round 1 has rerun, so a dry run lists round 1's
    assert cells == {"ema"}


def test_expand_top_limits_later_rounds_to_the_best_singles():
    s = section(techniques=["ema", "adaln", "reflow", "droppath"], rounds=3, expand_top=2)
    scores = {
        "baseline": runs(10),
        "reflow": runs(9),
        "adaln": runs(12),
        "ema": runs(11),
        "droppath": runs(10.5),
    }
    r1 = decide_round(s, 1, scores, None)
    assert r1["next"] == ["adaln+ema", "adaln+droppath"]


def test_sparse_cell_help_names_every_cell_a_user_can_ask_for(capsys):
    from reconlab.cli import main
    from reconlab.sparse.techniques import TECHNIQUES

    with pytest.raises(SystemExit):
        main(["sparse-cell", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in ("'baseline'", "'fixedq'", "'stored'", *TECHNIQUES):
        assert name in text, name
