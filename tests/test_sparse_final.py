"""The final cell: chosen by the greedy search, retrained with sparse.final; the learning curve."""

import pytest

from reconlab.config import validate_params
from reconlab.sparse.curve import curve_rows, endpoints
from reconlab.sparse.grid import cell_config, curve_steps, decide_round, final_config


def runs(*psnrs):
    return [{"val": {"all": {"psnr": p}}} for p in psnrs]


def test_final_cell_is_the_tiny_grids_best_with_the_final_budget():
    s = validate_params(
        {
            "sparse": {
                "grid": {"techniques": ["ema", "adaln"], "rounds": 2, "seeds": [0]},
                "train": {"steps": 50, "batch_size": 4, "data": "stored"},
                "final": {"steps": 400, "batch_size": 8, "lr": 0.001, "width": 32},
            }
        }
    )["sparse"]
    r1 = decide_round(s, 1, {"baseline": runs(10), "ema": runs(11), "adaln": runs(12)}, None)
    assert r1["next"] == ["adaln+ema"]
    r2 = decide_round(s, 2, {"adaln+ema": runs(13)}, r1)
    cfg = final_config(s, r2["best_so_far"])
    assert sorted(cfg["techniques"]) == ["adaln", "ema"]
    assert cfg["train"]["steps"] == 400 and cfg["train"]["batch_size"] == 8
    assert cfg["train"]["lr"] == 0.001 and cfg["model"]["width"] == 32
    assert cfg["train"]["data"] == "stream"  # always streamed, whatever the grid trained on
    assert cfg["curve_steps"] == [12, 25, 50, 100, 200, 400]
    # a round without gain keeps the earlier best: the final cell follows it
    r2_worse = decide_round(s, 2, {"adaln+ema": runs(11.5)}, r1)
    assert sorted(final_config(s, r2_worse["best_so_far"])["techniques"]) == ["adaln"]
    # the grid's cells keep the short budget; only the baseline cell carries a curve
    assert cell_config(s, "adaln")["train"]["steps"] == 50
    assert "curve_steps" not in cell_config(s, "adaln")
    assert cell_config(s, "baseline")["curve_steps"][-1] == 50


def test_curve_steps_halve_down_from_the_end():
    assert curve_steps(3000, 6) == [93, 187, 375, 750, 1500, 3000]
    assert curve_steps(6, 6) == [1, 3, 6]  # distinct, at least step 1


def _point(step, psnr, sin):
    return {"step": step, "examples": 16 * step, "psnr": psnr,
            "psnr_by_family": {"sinusoid": sin, "radial": psnr}}  # fmt: skip


def test_curve_rows_average_seeds_and_refuse_mismatched_steps():
    a = {"curve": [_point(10, 12.0, 20.0), _point(20, 14.0, 30.0)]}
    b = {"curve": [_point(10, 14.0, 22.0), _point(20, 16.0, 34.0)]}
    rows = curve_rows("final", [a, b], ["sinusoid", "radial"])
    assert [r["examples"] for r in rows] == [160, 320]
    assert rows[1]["psnr"] == 15.0 and rows[1]["psnr_sinusoid"] == 32.0
    assert endpoints(rows)["final"]["psnr_sinusoid"] == 32.0
    with pytest.raises(ValueError, match="differ in their steps"):
        curve_rows("final", [a, {"curve": [_point(10, 1, 1), _point(30, 1, 1)]}], ["radial"])
    with pytest.raises(ValueError, match="without 'curve'"):
        curve_rows("baseline", [a, {}], ["radial"])
