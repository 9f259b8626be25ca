"""The technique grid: cell names, per-cell configs, greedy round expansion and ranking.

A cell is a set of techniques, named by its techniques in canonical order joined with ``+``
(``baseline`` for none; ``fixedq`` for the fixed-query ablation: the earlier study's plain
model, ``grid.ablation_model``, trained on its fixed query pixels; ``stored`` for the baseline
trained on the stored train split instead of streamed fields). Round 1 is the
baseline and every single technique; round k+1 is the best cell so far plus each technique it does
not use yet (or only the ``grid.expand_top`` best of them alone), decided from round k's results
(a Snakemake checkpoint). The search stops early when a
round does not beat the best cell so far. Cells are selected on ``grid.select_split`` (val) and
reported on ``grid.eval_split`` (test), so the greedy search never sees the test set. The final
cell (:func:`final_config`) retrains the search's best cell with the longer ``sparse.final``
budget on streamed fields.

Nothing here imports torch: the Snakefile uses these functions at DAG-build time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from reconlab.config import canonical_json
from reconlab.sparse.techniques import TECHNIQUES, check_techniques

BASELINE = "baseline"
ABLATION = "fixedq"
STORED = "stored"  # the baseline trained on the stored train split (streamed: every other cell)
_CELL_KEYS = ("mask_seed", "observed", "queries", "model", "train", "sampler")


def cell_name(techniques) -> str:
    """Canonical name of a set of techniques."""
    names = check_techniques(techniques)
    return "+".join(names) if names else BASELINE


def cell_techniques(cell: str) -> tuple[str, ...]:
    """Inverse of :func:`cell_name` (the ablation cell uses no techniques)."""
    if cell in (BASELINE, ABLATION, STORED):
        return ()
    names = tuple(cell.split("+"))
    if cell_name(names) != cell:
        raise ValueError(f"sparse: cell {cell!r} is not canonical; expected {cell_name(names)!r}")
    return names


def cell_config(section: Mapping, cell: str) -> dict:
    """What one cell's training depends on: shared keys + the settings of ITS techniques only."""
    techniques = cell_techniques(cell)
    cfg = {k: section[k] for k in _CELL_KEYS}
    cfg["fixed_queries"] = cell == ABLATION
    if cell == ABLATION:  # the earlier study's plain model, trained on its fixed query pixels
        cfg["model"] = {**cfg["model"], **section["grid"]["ablation_model"]}
    if cell == STORED:
        cfg["train"] = {**cfg["train"], "data": "stored"}
    cfg["eval_splits"] = eval_splits(section)
    cfg["techniques"] = {t: dict(section["techniques"][t]) for t in techniques}
    if cell == BASELINE:  # the learning curve's first cell
        cfg["curve_steps"] = curve_steps(cfg["train"]["steps"], section["final"]["curve_points"])
    return cfg


def curve_steps(steps: int, points: int) -> list[int]:
    """Learning-curve steps: ``steps`` halved ``points - 1`` times (distinct, ending at steps)."""
    return sorted({max(1, steps >> (points - 1 - i)) for i in range(points)})


def final_config(section: Mapping, best: str) -> dict:
    """The final cell: ``best``'s config with ``sparse.final``'s steps, batch size, learning rate
    and width, streamed training data and the learning curve's evaluation steps."""
    f = section["final"]
    cfg = cell_config(section, best)
    cfg.pop("curve_steps", None)
    cfg["model"] = {**cfg["model"], "width": f["width"]}
    cfg["train"] = {
        **cfg["train"],
        "steps": f["steps"],
        "batch_size": f["batch_size"],
        "lr": f["lr"],
        "data": "stream",
    }
    cfg["curve_steps"] = curve_steps(f["steps"], f["curve_points"])
    return cfg


def cell_config_json(section: Mapping, cell: str) -> str:
    """Canonical JSON of :func:`cell_config`: the rerun trigger of a cell's rule."""
    return canonical_json(cell_config(section, cell))


def eval_splits(section: Mapping) -> list[str]:
    """The splits every cell is evaluated on: the selection split, then the reported one."""
    g = section["grid"]
    return list(dict.fromkeys([g["select_split"], g["eval_split"]]))


def ablation_cells(section: Mapping) -> list[str]:
    """The ablation cells the grid flags ask for (never part of the greedy search)."""
    g = section["grid"]
    return [c for c, on in ((ABLATION, g["fixed_query_ablation"]),
                            (STORED, g["stored_data_ablation"])) if on]  # fmt: skip


def first_round(section: Mapping) -> list[str]:
    """Round 1: the baseline and each searched technique alone."""
    return [BASELINE] + [cell_name([t]) for t in check_techniques(section["grid"]["techniques"])]


def score_cells(results: Mapping[str, list[dict]], split: str) -> dict[str, dict]:
    """Seed metrics per cell -> {cell: {mean, std, n, seeds}} of mean PSNR over all fields."""
    out = {}
    for cell, runs in results.items():
        values = [r[split]["all"]["psnr"] for r in runs]
        mean = sum(values) / len(values)
        # sample std across seeds (ddof 1): with 2 seeds the population std halves the spread
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))
        out[cell] = {
            "mean": round(mean, 4),
            "std": round(std, 4),
            "n": len(values),
            "seeds": values,
        }
    return out


def decide_round(
    section: Mapping,
    k: int,
    results: Mapping[str, list[dict]],
    previous: Mapping | None,
) -> dict:
    """Round k's record: its scores, the best cell so far and the cells of round k+1."""
    split = section["grid"]["select_split"]
    scores = score_cells(results, split)
    seen = dict(previous["seen"]) if previous else {}
    seen.update({c: s["mean"] for c, s in scores.items()})
    prev_best = previous["best_so_far"] if previous else None
    best = max(seen, key=lambda c: (seen[c], -len(cell_techniques(c)))) if seen else prev_best
    improved = prev_best is None or best != prev_best
    searched = check_techniques(section["grid"]["techniques"])
    nxt = []
    if improved and k < section["grid"]["rounds"] and best is not None:
        used = set(cell_techniques(best))
        remaining = [t for t in searched if t not in used]
        top = section["grid"]["expand_top"]
        if top is not None:  # beam: only the techniques that did best alone (round 1 scores)
            remaining = sorted(remaining, key=lambda t: -seen.get(t, float("-inf")))[:top]
            remaining = [t for t in searched if t in remaining]
        candidates = (cell_name([*used, t]) for t in remaining)
        nxt = [c for c in candidates if c not in seen]
    return {
        "round": k,
        "select_split": split,
        "cells": scores,
        "best_so_far": best,
        "best_so_far_psnr": seen.get(best),
        "improved": improved,
        "seen": seen,
        "next": nxt,
    }


def group_by_cell(paths) -> dict[str, list[dict]]:
    """Cell metrics files -> {cell: [seed metrics, in seed order]}."""
    from reconlab.io import read_json

    out: dict[str, list[dict]] = {}
    for path in paths:
        m = read_json(path)
        out.setdefault(m["cell"], []).append(m)
    return {c: sorted(runs, key=lambda r: r["seed"]) for c, runs in out.items()}


def pooled_std(scores: Mapping[str, dict]) -> float | None:
    """Seed-to-seed spread pooled over every cell with two or more seeds (root mean variance)."""
    variances = [s["std"] ** 2 for s in scores.values() if s.get("n", 0) >= 2]
    return math.sqrt(sum(variances) / len(variances)) if variances else None


def technique_ranking(scores: Mapping[str, dict]) -> list[dict]:
    """Single-technique gains over the baseline cell.

    ``beneficial``: gain > 2 x the baseline's seed std (the study's criterion; ``None`` with fewer
    than two seeds). With few seeds one cell's std can come out near zero, so
    ``beneficial_pooled`` also asks for a gain above 2 x the seed std pooled over all cells.
    """
    base = scores[BASELINE]
    pooled = pooled_std(scores)
    rows = []
    for t in TECHNIQUES:
        if t not in scores:
            continue
        gain = scores[t]["mean"] - base["mean"]
        rows.append(
            {
                "technique": t,
                "psnr": scores[t]["mean"],
                "psnr_std": scores[t]["std"],
                "gain_db": round(gain, 4),
                "threshold_db": round(2 * base["std"], 4),
                # one seed has no spread: the criterion is undefined, not passed
                "beneficial": gain > 2 * base["std"] if base.get("n", 0) >= 2 else None,
                "pooled_threshold_db": None if pooled is None else round(2 * pooled, 4),
                "beneficial_pooled": None if pooled is None else gain > 2 * pooled,
            }
        )
    return sorted(rows, key=lambda r: -r["gain_db"])


# Output templates of the sparse rules (written once; the Snakefile's rules use them)
CELL_DIR = "results/sparse/cells/{cell}/seed{seed}"
ROUND_RECORD = "results/sparse/rounds/round{k}.json"
FINAL_DIR = "results/sparse/final/seed{seed}"
