"""Tables, ranking, heatmap and summary of the whole sparse grid (the ``aggregate_sparse`` rule)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from reconlab.io import read_json, write_csv, write_json
from reconlab.provenance import summarize_compute
from reconlab.sparse.family_fit import LABEL as FAMILY_FIT_LABEL
from reconlab.sparse.grid import (
    ABLATION,
    BASELINE,
    STORED,
    ablation_cells,
    cell_techniques,
    group_by_cell,
    score_cells,
    technique_ranking,
)

_METRICS = ("psnr", "psnr_unclamped", "mse", "mae", "corr")


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return round(float(a.mean()), 4), round(float(a.std(ddof=1)) if len(a) > 1 else 0.0, 4)


FINAL = "final"  # the final cell's label (its techniques: those of the cell it retrains)
MARGIN_DB = 1.0  # "above the best interpolation baseline" means by at least this much


def matrix_rows(
    results: Mapping[str, list[dict]], rounds: Mapping[str, int], split: str, families
) -> list[dict]:
    """One row per cell: mean/std over seeds of each metric, per-family PSNR, cost."""
    rows = []
    for cell, runs in results.items():
        row = {
            "cell": cell,
            "round": rounds.get(cell, 0),
            "techniques": " ".join(cell_techniques(cell)),
            "n_techniques": len(cell_techniques(cell)),
            "seeds": len(runs),
        }
        for m in _METRICS:
            row[m], row[f"{m}_std"] = _mean_std([r[split]["all"][m] for r in runs])
        for fam in families:
            row[f"psnr_{fam}"] = _mean_std([r[split]["by_family"][fam]["psnr"] for r in runs])[0]
        row["train_seconds"] = _mean_std([r["train_seconds"] for r in runs])[0]
        row["parameters"] = runs[0]["parameters"]
        rows.append(row)
    return sorted(rows, key=lambda r: -r["psnr"])


COLLAPSE_MARGIN_DB = 0.5


def best_interpolation_baseline(base: Mapping, families) -> dict[str, tuple[float, str]]:
    """{family: (PSNR, method)} of the best interpolation baseline in one split of the baselines
    JSON; the references (observed mean, family-aware fit) never count as one."""
    from reconlab.sparse.baselines import REFERENCES

    methods = [m for m in base if m not in REFERENCES]
    return {f: max((base[m]["by_family"][f]["psnr"], m) for m in methods) for f in families}


def family_fit_limit(base: Mapping, families) -> dict | None:
    """{family: PSNR or "not applicable"} of the family-aware fit; None when it was not run."""
    if "family_fit" not in base:
        return None
    rows = base["family_fit"]["by_family"]
    return {f: r if isinstance(r, str) else r["psnr"] for f, r in rows.items() if f in families}


def ranked_techniques(results: Mapping[str, list[dict]], sel: str, split: str) -> list[dict]:
    """:func:`technique_ranking` on the selection split (the ablation left out), each entry with
    its gain over the baseline cell on the reported split (``{split}_gain_db``, dB)."""
    ranking = technique_ranking(
        score_cells({c: r for c, r in results.items() if c != ABLATION}, sel)
    )
    test_scores = score_cells(results, split)
    for r in ranking:
        r[f"{split}_gain_db"] = round(
            test_scores[r["technique"]]["mean"] - test_scores[BASELINE]["mean"], 4
        )
    return ranking


def best_combinations(records: list[dict], rows: list[dict], sel: str, split: str) -> dict:
    """The greedy path round by round and the ten best cells on the reported split."""
    best_rows = [r for r in rows if r["cell"] != ABLATION][:10]
    return {
        "selected_on": sel,
        "reported_on": split,
        "best_cell": records[-1]["best_so_far"],
        "greedy_path": [
            {"round": r["round"], "best_so_far": r["best_so_far"], "psnr": r["best_so_far_psnr"]}
            for r in records
        ],
        "top_by_test_psnr": [
            {"cell": r["cell"], "psnr": r["psnr"], "psnr_std": r["psnr_std"]} for r in best_rows
        ],
    }


def plot_gains(path: Path, rows: list[dict], families: list[str], title: str) -> None:
    """Heatmap of each cell's per-family PSNR gain (dB) over the baseline cell."""
    from reconlab.sparse.plots import improvement_heatmap

    by_cell = {r["cell"]: r for r in rows}
    base_row = by_cell[BASELINE]
    shown = [r["cell"] for r in rows if r["cell"] != BASELINE]
    gains = np.array(
        [[by_cell[c][f"psnr_{f}"] - base_row[f"psnr_{f}"] for f in families] for c in shown]
    )
    improvement_heatmap(path, shown, families, gains.reshape(len(shown), len(families)), title)


def grid_summary(
    results: Mapping[str, list[dict]],
    rows: list[dict],
    records: list[dict],
    ranking: list[dict],
    base: Mapping,
    overfit: Mapping,
    families: list[str],
    split: str,
) -> dict:
    """``summary.json`` (less ``seeds``): the best cell against the baselines, the ablation, the
    overfit check, compute and the study's targets. ``base`` is the baselines JSON of ``split``."""
    by_cell = {r["cell"]: r for r in rows}
    best = records[-1]["best_so_far"]
    best_baseline = best_interpolation_baseline(base, families)
    limit = family_fit_limit(base, families)
    best_by_family = {f: by_cell[best][f"psnr_{f}"] for f in families}
    wins = sum(best_by_family[f] > best_baseline[f][0] for f in families)
    mean_psnr = base["mean"]["all"]["psnr"] if "mean" in base else None
    ablation = by_cell[ABLATION]["psnr"] if ABLATION in by_cell else None
    runs = [r for rs in results.values() for r in rs]
    return {
        "best_cell": best,
        "best_psnr": by_cell[best]["psnr"],
        "best_psnr_std": by_cell[best]["psnr_std"],
        "best_psnr_unclamped": by_cell[best]["psnr_unclamped"],
        "baseline_cell_psnr": by_cell[BASELINE]["psnr"],
        "best_psnr_by_family": best_by_family,
        "best_baseline_psnr_by_family": {f: v[0] for f, v in best_baseline.items()},
        "best_baseline_method_by_family": {f: v[1] for f, v in best_baseline.items()},
        # the attainable limit, not a baseline: each family's own form fitted (told the family)
        "family_fit_psnr_by_family": limit,
        "family_fit_label": FAMILY_FIT_LABEL if limit else None,
        "families_above_best_baseline": int(wins),
        "stored_data_ablation_psnr": by_cell[STORED]["psnr"] if STORED in by_cell else None,
        "stored_data_ablation_psnr_by_family": {f: by_cell[STORED][f"psnr_{f}"] for f in families}
        if STORED in by_cell
        else None,
        "fixed_query_ablation_psnr": ablation,
        "fixed_query_ablation_psnr_by_family": {f: by_cell[ABLATION][f"psnr_{f}"] for f in families}
        if ABLATION in by_cell
        else None,
        "mean_predictor_psnr": mean_psnr,
        "fixed_query_ablation_collapsed": collapsed(ablation, mean_psnr),
        "overfit_psnr": overfit["psnr"],
        "grid_wall_s": round(max(r["finished"] for r in runs) - min(r["started"] for r in runs), 1),
        "grid_train_seconds": round(sum(r["train_seconds"] for r in runs), 1),
        "cells": len(results),
        "rounds": len(records),
        "beneficial_techniques": [r["technique"] for r in ranking if r["beneficial"]],
        "beneficial_techniques_pooled": [r["technique"] for r in ranking if r["beneficial_pooled"]],
        "grid_targets": {  # the grid's best cell on its short budget; "targets": the final cell
            "sinusoid_psnr_at_least_30db": best_by_family.get("sinusoid", 0.0) >= 30.0,
            "above_best_baseline_on_4_of_6_families": bool(wins >= 4),
        },
        "split": split,
    }


def collapsed(ablation: float | None, mean_psnr: float | None) -> bool | None:
    """The fixed-query ablation collapsed: no better than predicting the observed mean (+0.5 dB)."""
    if ablation is None or mean_psnr is None:
        return None
    return bool(ablation <= mean_psnr + COLLAPSE_MARGIN_DB)


def final_summary(final_runs: list[dict], base: Mapping, families: list[str], split: str) -> dict:
    """The final cell's block of summary.json: its PSNR overall and per family (mean over seeds)
    and its margin over the best interpolation baseline per family (dB)."""
    row = matrix_rows({final_runs[0]["cell"]: final_runs}, {}, split, families)[0]
    best_baseline = best_interpolation_baseline(base, families)
    by_family = {f: row[f"psnr_{f}"] for f in families}
    cfg = final_runs[0]["config"]
    return {
        "techniques": final_runs[0]["techniques"],
        "from_cell": final_runs[0]["cell"],
        "steps": cfg["train"]["steps"],
        "batch_size": cfg["train"]["batch_size"],
        "width": cfg["model"]["width"],
        "psnr": row["psnr"],
        "psnr_std": row["psnr_std"],
        "psnr_by_family": by_family,
        "margin_over_best_baseline_by_family": {
            f: round(by_family[f] - best_baseline[f][0], 4) for f in families
        },
        "train_seconds": row["train_seconds"],
        "parameters": row["parameters"],
    }


def study_targets(final: Mapping | None, overfit_psnr: float, ablation_collapsed) -> dict:
    """The study's targets (issue 16), judged on the final cell (None without one)."""
    margins = final["margin_over_best_baseline_by_family"] if final else None
    return {
        "final_sinusoid_psnr_at_least_30db": None
        if final is None
        else bool(final["psnr_by_family"].get("sinusoid", 0.0) >= 30.0),
        "final_above_best_baseline_by_1db_on_6_of_6_families": None
        if margins is None
        else bool(len(margins) >= 6 and all(v >= MARGIN_DB for v in margins.values())),
        "overfit_psnr_at_least_40db": bool(overfit_psnr >= 40.0),
        "fixed_query_ablation_collapses": ablation_collapsed,
    }


def learning_curve(out: Path, baseline_runs, final_runs, families, split) -> dict | None:
    """learning_curve.csv + .png of the baseline cell and the final cell; {cell: last row}."""
    from reconlab.sparse.curve import curve_rows, endpoints, learning_curve_figure

    rows = []
    for label, runs in ((BASELINE, baseline_runs), (FINAL, final_runs)):
        if runs and all(r.get("curve") for r in runs):
            rows += curve_rows(label, runs, families)
    if not rows:
        return None
    write_csv(out / "learning_curve.csv", rows, list(rows[0]))
    title = f"Learning curve ({split} split, mean of {rows[0]['seeds']} seed(s))"
    learning_curve_figure(out / "learning_curve.png", rows, families, title)
    return endpoints(rows)


# summary.json keys that dvc metrics diff shows: the summed compute seconds of the cells, not the
# grid's wall time (which counts unrelated jobs run in between; it stays in summary.json)
DVC_METRICS = (
    "best_psnr",
    "baseline_cell_psnr",
    "fixed_query_ablation_psnr",
    "stored_data_ablation_psnr",
    "overfit_psnr",
    "families_above_best_baseline",
    "grid_train_seconds",
)


def dvc_metrics(summary: Mapping, runs: list[dict]) -> dict:
    """The small scalars of ``metrics/sparse.json`` (numbers only: the final cell per family, the
    family-aware limit, the learning curves' endpoints) and the compute of ``runs``."""
    metrics = {k: summary[k] for k in DVC_METRICS}
    metrics["best_psnr_sinusoid"] = summary["best_psnr_by_family"].get("sinusoid")
    metrics["best_baseline_psnr_sinusoid"] = summary["best_baseline_psnr_by_family"].get("sinusoid")
    for f, v in (summary["family_fit_psnr_by_family"] or {}).items():
        if not isinstance(v, str):  # a family without a form has no key
            metrics[f"family_fit_psnr_{f}"] = v
    if summary.get("final_cell"):
        metrics["final_psnr"] = summary["final_cell"]["psnr"]
        for f, v in summary["final_cell"]["psnr_by_family"].items():
            metrics[f"final_psnr_{f}"] = v
    for cell, point in (summary.get("learning_curve_endpoints") or {}).items():
        metrics[f"curve_{cell}_examples"] = point["examples"]
        metrics[f"curve_{cell}_psnr"] = point["psnr"]
    metrics["compute"] = summarize_compute(runs)
    return metrics


def aggregate(
    section: Mapping,
    rounds,
    cells,
    final,
    baselines: str | Path,
    overfit: str | Path,
    out: str | Path,
    metrics_out: str | Path,
) -> dict:
    """Write performance_matrix.csv, technique_ranking.json, best_combinations.json,
    improvement_heatmap.png, learning_curve.csv/.png and summary.json under ``out``; small
    scalars to ``metrics_out``. ``rounds``: the round records in order; ``cells``: metrics.json
    of every grid and ablation cell and seed; ``final``: the final cell's, one per seed.
    Raises ValueError naming a cell of the records or an ablation that has no metrics."""
    out, g = Path(out), section["grid"]
    records = [read_json(p) for p in rounds]
    round_of = {c: r["round"] for r in records for c in r["cells"]}
    wanted = [*round_of, *ablation_cells(section)]
    given = group_by_cell(cells)
    missing = [c for c in wanted if c not in given]
    if missing:
        raise ValueError(f"sparse-aggregate: no metrics for cell(s) {missing} in --cells")
    results = {c: given[c] for c in wanted}
    split, sel = g["eval_split"], g["select_split"]
    families = list(results[BASELINE][0][split]["by_family"])

    rows = matrix_rows(results, round_of, split, families)
    write_csv(out / "performance_matrix.csv", rows, list(rows[0]))
    ranking = ranked_techniques(results, sel, split)
    write_json(out / "technique_ranking.json", {"select_split": sel, "ranking": ranking})
    write_json(out / "best_combinations.json", best_combinations(records, rows, sel, split))
    title = f"PSNR gain over baseline ({split}, mean of {len(g['seeds'])} seed(s))"
    plot_gains(out / "improvement_heatmap.png", rows, families, title)

    base, ov = read_json(baselines)[split], read_json(overfit)
    final_runs = [read_json(p) for p in final]
    summary = grid_summary(results, rows, records, ranking, base, ov, families, split)
    summary["final_cell"] = final_summary(final_runs, base, families, split) if final_runs else None
    summary["learning_curve_endpoints"] = learning_curve(
        out, results.get(BASELINE, []), final_runs, families, split
    )
    summary["targets"] = study_targets(
        summary["final_cell"], ov["psnr"], summary["fixed_query_ablation_collapsed"]
    )
    runs = [r for rs in results.values() for r in rs]
    if final_runs:  # first grid cell's start to the last final seed's end (other jobs between)
        ends = [r["finished"] for r in [*runs, *final_runs]]
        summary["study_wall_s"] = round(max(ends) - min(r["started"] for r in runs), 1)
    summary["seeds"] = list(g["seeds"])
    write_json(out / "summary.json", summary)
    write_json(metrics_out, dvc_metrics(summary, [*runs, *final_runs]))
    return summary
