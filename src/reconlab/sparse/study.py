"""What each rule of the sparse stage does: one cell, one round, the baselines, the overfit check.

Each function reads files, calls the science modules and writes its outputs atomically. The
aggregation into tables and figures lives in :mod:`reconlab.sparse.aggregate`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from reconlab.io import read_json, write_json
from reconlab.sparse.grid import (
    ABLATION,
    cell_techniques,
    decide_round,
    eval_splits,
    first_round,
    group_by_cell,
)

log = logging.getLogger(__name__)


def _load(fields_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from reconlab.data.fields import load_fields

    d = load_fields(fields_dir, split)
    families = read_json(Path(fields_dir) / "index.json")["families"]
    return d["fields"], d["family"].astype(np.int64), families


def one_per_family(family: np.ndarray) -> np.ndarray:
    """Index of the first field of each family present (for sample grids)."""
    return np.array([int(np.flatnonzero(family == f)[0]) for f in np.unique(family)])


def save_samples(path: Path, truth: np.ndarray, preds: Mapping[str, np.ndarray],
                 masks: np.ndarray, labels: list[str]) -> None:  # fmt: skip
    """The sample fields of a grid as arrays for the report's viewer: ``truth`` (n, H, W),
    each of ``preds`` (n, H, W), ``masks`` (n, k) observed pixel indices, ``labels`` (n,), and
    ``psnr_<pred key>`` (n,): each prediction's PSNR in dB, clamped to [0, 1] first (the
    study's definition), so the report shows the study's numbers without recomputing them."""
    from reconlab.evaluation.image_metrics import psnr_per_image
    from reconlab.io import atomic_path

    psnr = {
        f"psnr_{k}": np.asarray(psnr_per_image(np.clip(v, 0, 1), truth)) for k, v in preds.items()
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, truth=truth, masks=masks, labels=np.array(labels), **preds, **psnr)


def run_cell(cfg: Mapping, cell: str, seed: int, fields_dir: str | Path, out: str | Path) -> dict:
    """Train one cell with one seed; evaluate on every split in ``cfg['eval_splits']``.

    Writes ``out/metrics.json`` and ``out/samples.png`` (observed / truth / prediction / error,
    one field per family of the last evaluated split).
    """
    import torch

    from reconlab.checkpoint import checkpoint_path, discard_checkpoint
    from reconlab.sparse.plots import sample_grid
    from reconlab.sparse.train import (
        evaluation_masks,
        field_metrics,
        predict_fields,
        summarize_by_family,
        train_cell,
    )

    out = Path(out)
    cfg = dict(cfg)
    torch.set_num_threads(cfg["train"]["threads"])
    started = time.time()
    train, _, families = _load(fields_dir, "train")
    index = read_json(Path(fields_dir) / "index.json")
    curve = _curve_callback(cfg, fields_dir, seed, families)
    model, history = train_cell(
        cfg, train, seed, checkpoint=checkpoint_path(out), stream=index, on_step=curve
    )
    result = {
        "cell": cell,
        "seed": seed,
        "techniques": list(cell_techniques(cell)),
        "fixed_queries": cell == ABLATION,
        "config": cfg,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "train_seconds": history["train_seconds"],
        "seconds_per_step": history["seconds_per_step"],
        **history["compute"],
        "history": {"step": history["step"], "loss": history["loss"]},
    }
    t0 = time.perf_counter()
    for split in cfg["eval_splits"]:
        fields, family, _ = _load(fields_dir, split)
        masks = evaluation_masks(cfg, len(fields), fields[0].size, split)
        pred = predict_fields(model, cfg, fields, masks, seed)
        result[split] = summarize_by_family(field_metrics(pred, fields), family, families)
        log.info("%s seed %d %s: PSNR %.2f dB", cell, seed, split, result[split]["all"]["psnr"])
    result["eval_seconds"] = round(time.perf_counter() - t0, 2)
    if curve is not None:  # the last point is the trained model's evaluation above
        last = {"step": cfg["train"]["steps"], "split": split}
        last["examples"] = cfg["train"]["steps"] * cfg["train"]["batch_size"]
        last["psnr"] = result[split]["all"]["psnr"]
        last["psnr_by_family"] = {f: v["psnr"] for f, v in result[split]["by_family"].items()}
        result["curve"] = [*history["curve"], last]
    pick = one_per_family(family)
    sample_grid(
        out / "samples.png",
        fields[pick],
        pred[pick],
        masks[pick],
        [families[f] for f in family[pick]],
        f"{cell} (seed {seed}, {split})",
    )
    save_samples(out / "samples.npz", fields[pick], {"pred": pred[pick]}, masks[pick],
                 [families[f] for f in family[pick]])  # fmt: skip
    result["started"], result["finished"] = round(started, 2), round(time.time(), 2)
    write_json(out / "metrics.json", result)
    discard_checkpoint(checkpoint_path(out))  # the outputs above now hold the finished run
    return result


def run_final(
    section: Mapping, record: str | Path, seed: int, fields_dir: str | Path, out: str | Path
) -> dict:
    """Train the final cell: the best cell of the last round ``record`` with ``sparse.final``'s
    budget on streamed fields (:func:`reconlab.sparse.grid.final_config`)."""
    from reconlab.sparse.grid import final_config

    best = read_json(record)["best_so_far"]
    return run_cell(final_config(section, best), best, seed, fields_dir, out)


def _curve_callback(cfg: Mapping, fields_dir, seed: int, families):
    """``on_step`` for :func:`train_cell`: at each of ``cfg['curve_steps']`` before the last,
    PSNR on the reported split (overall and per family) against examples seen; None without."""
    from reconlab.sparse.train import (
        evaluation_masks,
        field_metrics,
        predict_fields,
        summarize_by_family,
    )

    at = set(cfg.get("curve_steps") or []) - {cfg["train"]["steps"]}
    if not at:
        return None
    split = cfg["eval_splits"][-1]
    fields, family, _ = _load(fields_dir, split)
    masks = evaluation_masks(cfg, len(fields), fields[0].size, split)

    def evaluate(step: int, model) -> dict | None:
        if step not in at:
            return None
        model.eval()
        pred = predict_fields(model, cfg, fields, masks, seed)
        s = summarize_by_family(field_metrics(pred, fields), family, families)
        log.info("curve: step %d %s PSNR %.2f dB", step, split, s["all"]["psnr"])
        return {
            "step": step,
            "examples": step * cfg["train"]["batch_size"],
            "split": split,
            "psnr": s["all"]["psnr"],
            "psnr_by_family": {f: v["psnr"] for f, v in s["by_family"].items()},
        }

    return evaluate


def round_cells(section: Mapping, k: int, previous: Mapping | None) -> list[str]:
    """The cells of round k: round 1 from params, later rounds from round k-1's record."""
    if k == 1:
        return first_round(section)
    if previous is None:
        raise ValueError(f"sparse: round {k} needs round {k - 1}'s record")
    return list(previous["next"])


def run_round(
    section: Mapping, k: int, cell_files, previous: str | Path | None, out: str | Path
) -> dict:
    """Collect round k's seed metrics (``cell_files``), pick the best cell so far, write round
    k+1's cells. Raises ValueError when a cell of the round or one of its seeds is missing."""
    prev = read_json(previous) if previous else None
    given = group_by_cell(cell_files)
    results = {}
    for cell in round_cells(section, k, prev):
        runs = given.get(cell, [])
        if [r["seed"] for r in runs] != list(section["grid"]["seeds"]):
            raise ValueError(
                f"sparse round {k}: cell {cell!r} needs seeds {section['grid']['seeds']}, "
                f"got {[r['seed'] for r in runs]} in --cells"
            )
        results[cell] = runs
    record = decide_round(section, k, results, prev)
    write_json(out, record)
    return record


def summarize_baseline(pred: np.ndarray, fields: np.ndarray, family: np.ndarray, families) -> dict:
    """summarize_by_family of a baseline's predictions (M, S, S); a family whose fields it was
    not applicable to (NaN rows: the family-aware fit of a family without a form) reads
    "not applicable", and then "all" too, with "applicable" the mean over the other fields."""
    from reconlab.sparse.family_fit import NOT_APPLICABLE
    from reconlab.sparse.train import field_metrics, summarize_by_family

    ok = ~np.isnan(pred.reshape(len(pred), -1)).any(1)
    if ok.all():
        return summarize_by_family(field_metrics(pred, fields), family, families)
    summary = {"all": NOT_APPLICABLE, "applicable": NOT_APPLICABLE, "by_family": {}}
    if ok.any():
        summary = summarize_by_family(field_metrics(pred[ok], fields[ok]), family[ok], families)
        summary["applicable"], summary["all"] = summary["all"], NOT_APPLICABLE
    for f in np.unique(family[~ok]):
        summary["by_family"][families[f]] = NOT_APPLICABLE
    return summary


def run_baselines(section: Mapping, fields_dir: str | Path, out: str | Path) -> dict:
    """Every interpolation baseline on every eval split, with the same seeded masks as the cells,
    and the references: the observed mean and the family-aware fit (told each field's family)."""
    from reconlab.sparse.baselines import interpolate_fields
    from reconlab.sparse.grid import cell_config
    from reconlab.sparse.train import evaluation_masks

    cfg = cell_config(section, "baseline")
    result = {"methods": list(section["baselines"]["methods"])}
    picked: dict[str, np.ndarray] = {}
    for split in eval_splits(section):
        fields, family, families = _load(fields_dir, split)
        masks = evaluation_masks(cfg, len(fields), fields[0].size, split)
        result[split] = {}
        for method in result["methods"]:
            t0 = time.perf_counter()
            names = [families[f] for f in family]  # for the family-aware fit
            settings = section["baselines"].get(method)  # the fit's grid sizes and budget
            pred = interpolate_fields(method, fields, masks, names, settings)
            picked[f"pred_{method}"] = pred[one_per_family(family)]  # the last split's
            summary = summarize_baseline(pred, fields, family, families)
            summary["seconds"] = round(time.perf_counter() - t0, 2)
            result[split][method] = summary
            shown = summary.get("applicable", summary["all"])
            shown = f"{shown['psnr']:.2f} dB" if isinstance(shown, dict) else shown
            log.info("baseline %s %s: PSNR %s", method, split, shown)
    pick = one_per_family(family)
    save_samples(Path(out).parent / "baseline_samples.npz", fields[pick], picked, masks[pick],
                 [families[f] for f in family[pick]])  # fmt: skip
    write_json(out, result)
    return result


def run_overfit(section: Mapping, fields_dir: str | Path, out: str | Path) -> dict:
    """Fit the baseline model to ONE training field; PSNR over its 1024 pixels (expect >= 40 dB)."""
    import torch

    from reconlab.sparse.grid import cell_config
    from reconlab.sparse.train import field_metrics, overfit_one_field

    o = section["overfit"]
    torch.set_num_threads(section["train"]["threads"])
    train, family, families = _load(fields_dir, "train")
    field = train[o["field_index"] : o["field_index"] + 1]
    cfg = cell_config(section, "baseline")
    # the check measures capacity, not rounding: it trains at overfit.precision (fp32)
    cfg["train"] = dict(cfg["train"], precision=o["precision"])
    pred, history = overfit_one_field(cfg, field, o["steps"], o["lr"], o["batch_size"], seed=0)
    m = field_metrics(pred, field)
    result = {
        "field_index": o["field_index"],
        "family": families[int(family[o["field_index"]])],
        "steps": o["steps"],
        "psnr": round(float(m["psnr"][0]), 3),
        "psnr_unclamped": round(float(m["psnr_unclamped"][0]), 3),
        "train_seconds": history["train_seconds"],
        **history["compute"],
    }
    log.info("overfit: PSNR %.2f dB after %d steps", result["psnr"], o["steps"])
    write_json(out, result)
    return result
