"""The report's header: which commit and settings made this run, on what, and how long it took.

Sources, each read when present and skipped gracefully when not:

* the ``run`` block of the metrics files (:func:`reconlab.provenance.run_block`: configuration
  name, overlays with sha256, git commit, dirty flag); without one, the environment's
  ``RECONLAB_RUN`` and the working tree's git state;
* the effective params (the whole merged config, passed by the report rule);
* ``device`` / ``precision`` / ``cpu_capability`` / ``torch`` keys of any results JSON;
* weights identity per backbone (``results/features/summary.json``);
* Snakemake ``benchmark:`` files (``logs/benchmarks/<rule>/<wildcards>.tsv``): wall time per rule.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from reconlab.report.context import is_untrained
from reconlab.report.tables import frame_table

# the keys of reconlab.runtime.compute_record (the GPU's name is its cpu_capability on CUDA)
COMPUTE_KEYS = ("device", "precision", "precision_requested", "cpu_capability", "torch")
COMPUTE_LABELS = {
    "study": "study", "device": "device", "precision": "precision",
    "precision_requested": "asked for", "cpu_capability": "CPU / GPU",
    "torch": "torch", "precision_reason": "why this precision",
}  # fmt: skip
BENCHMARK_COLUMNS = {
    "rule": "rule",
    "total_s": "wall time, all jobs (s)",
    "jobs": "jobs",
    "max_s": "slowest job (s)",
    "max_rss_mb": "peak RSS (MB)",
    "cpu_s": "CPU time (s)",
}


def run_block(metrics: Path, project: Path) -> dict[str, Any]:
    """The first ``run`` block found in ``metrics/*.json``, else one built here (``source`` says)."""
    for path in sorted(Path(metrics).glob("*.json")):
        try:
            block = json.loads(path.read_text()).get("run")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(block, dict) and "git_commit" in block:
            return {**block, "source": str(path)}
    try:
        from reconlab.provenance import run_block_from_env

        return {**run_block_from_env(project), "source": "computed at report time"}
    except (ImportError, FileNotFoundError, ValueError):
        pass
    return {**_git(project), "config": "unknown", "overlays": [], "source": "git at report time"}


def _git(project: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            p = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True)
        except OSError:
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = None if commit is None else bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"git_commit": commit, "git_dirty": dirty}


def compute_rows(results: Path) -> pd.DataFrame:
    """One row per (study, device, precision, CPU/GPU, torch) found in results JSON files."""
    rows = []
    for path in sorted(Path(results).rglob("*.json")):
        # results/metrics/ holds per-configuration summaries of the same records: skip them
        if path.stat().st_size > 2_000_000 or path.relative_to(results).parts[0] == "metrics":
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for record in _records(data):
            # what ran (runtime.compute_record), not a device asked for in a config block
            if "device" in record and ("cpu_capability" in record or "torch" in record):
                row = {"study": path.relative_to(results).parts[0]}
                row.update({k: _flat(record.get(k)) for k in COMPUTE_KEYS})
                row["precision_reason"] = record.get("precision_reason")
                rows.append(row)
    frame = pd.DataFrame.from_records(rows, columns=["study", *COMPUTE_KEYS, "precision_reason"])
    # one row per study and setting (the reason may quote a per-job probe timing)
    frame = frame.drop_duplicates(subset=["study", *COMPUTE_KEYS])
    return frame.dropna(axis=1, how="all").reset_index(drop=True)


COMPUTE_BLOCKS = ("runtime", "compute", "metadata")


def _records(data: Any) -> list[dict]:
    """The object itself and its ``runtime`` / ``compute`` / ``metadata`` blocks (not the
    ``config`` it was asked for: ``device: auto`` there is a request, not what ran)."""
    if not isinstance(data, dict):
        return []
    return [data, *(data[k] for k in COMPUTE_BLOCKS if isinstance(data.get(k), dict))]


def _flat(value: Any) -> Any:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return value


def weights_rows(results: Path) -> list[dict]:
    summary = Path(results) / "features" / "summary.json"
    if not summary.exists():
        return []
    return [
        {
            "backbone": b["backbone_id"],
            "model": b["model"],
            "weights": b["weights_id"],
            "untrained": bool(b["untrained"]),
        }
        for b in json.loads(summary.read_text())["backbones"]
    ]


def benchmarks(folder: Path) -> pd.DataFrame:
    """Snakemake benchmark files summed per rule: jobs, total and slowest wall time, peak RSS.

    ``folder``/<rule>/<wildcards>.tsv, each with Snakemake's columns (``s``, ``max_rss`` in MB,
    ``cpu_time``); the last line of a file is its latest run. Sorted by total time, longest first.
    """
    rows = []
    for path in sorted(Path(folder).rglob("*.tsv")) if Path(folder).is_dir() else []:
        try:
            frame = pd.read_csv(path, sep="\t", na_values=["-", "NA"])
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        if frame.empty or "s" not in frame:
            continue
        last = frame.iloc[-1]
        rule = path.relative_to(folder).parts[0]
        rows.append(
            {
                "rule": rule,
                "job": path.stem,
                "s": float(last["s"]),
                "max_rss": float(last.get("max_rss", float("nan"))),
                "cpu_time": float(last.get("cpu_time", float("nan"))),
            }
        )
    if not rows:
        return pd.DataFrame(columns=list(BENCHMARK_COLUMNS))
    jobs = pd.DataFrame.from_records(rows)
    per_rule = jobs.groupby("rule").agg(
        total_s=("s", "sum"),
        jobs=("s", "size"),
        max_s=("s", "max"),
        max_rss_mb=("max_rss", "max"),
        cpu_s=("cpu_time", "sum"),
    )
    return per_rule.sort_values("total_s", ascending=False).reset_index()


def benchmark_figure(per_rule: pd.DataFrame, path: Path) -> Path | None:
    """Horizontal bars of wall time per rule (longest on top), saved by the figure helper."""
    if per_rule.empty:
        return None
    from reconlab.figures import pyplot, save_figure

    plt = pyplot()
    frame = per_rule.sort_values("total_s")
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(frame) + 1.3), layout="constrained")
    ax.barh(frame["rule"], frame["total_s"], color="#4c78a8")
    for y, (total, jobs) in enumerate(zip(frame["total_s"], frame["jobs"], strict=True)):
        ax.text(total, y, f" {total:.1f} s" + (f" ({jobs} jobs)" if jobs > 1 else ""),
                va="center", fontsize=9)  # fmt: skip
    ax.set_xlabel("wall time, all jobs of the rule (s)")
    ax.set_xlim(0, float(frame["total_s"].max()) * 1.35 or 1)
    ax.set_title("Wall time per rule (Snakemake benchmark files)")
    save_figure(fig, path)
    return path


def banners(run: dict, params: dict | None, weights: list[dict]) -> list[tuple[str, str]]:
    """(css class, text) for a smoke / offline / untrained / uncommitted run."""
    out = []
    overlays = " ".join(str(o.get("path", o)) for o in run.get("overlays", []))
    name = str(run.get("config", ""))
    if "smoke" in name or "smoke" in overlays:
        out.append(("smoke", "Smoke run: tiny configuration (config/smoke.yaml). Numbers test the "
                             "pipeline, not the science."))  # fmt: skip
    random = [w["backbone"] for w in weights if w["untrained"]]
    backbones = (params or {}).get("features", {}).get("backbones", [])
    offline = "offline" in name or "offline" in overlays
    if not offline and backbones:
        offline = all(is_untrained(b.get("weights")) for b in backbones)
    if offline:
        out.append(("offline", "Offline run: no network; every backbone and metric network uses "
                               "seeded random weights (config/offline.yaml)."))  # fmt: skip
    if random:
        out.append(("untrained", f"Untrained backbones: {', '.join(random)} — results from these "
                                 "measure random features, not pretraining."))  # fmt: skip
    if run.get("git_dirty"):
        out.append(("dirty", "Uncommitted changes: the working tree differed from commit "
                             f"{str(run.get('git_commit'))[:12]} when this ran."))  # fmt: skip
    return out


def provenance(
    results: Path, metrics: Path, project: Path, params: dict | None, benchmark_dir: Path,
    figure_path: Path,
) -> dict[str, Any]:  # fmt: skip
    """Everything the header shows, as template values."""
    run = run_block(metrics, project)
    weights = weights_rows(results)
    per_rule = benchmarks(benchmark_dir)
    compute = compute_rows(results)
    return {
        "run": run,
        "banners": banners(run, params, weights),
        "params_yaml": _yaml(params) if params else None,
        "weights": weights,
        "compute": frame_table(compute, {c: COMPUTE_LABELS[c] for c in compute.columns}),
        "benchmarks": frame_table(per_rule, BENCHMARK_COLUMNS, headline="total_s"),
        "total_s": float(per_rule["total_s"].sum()) if not per_rule.empty else None,
        "benchmark_png": benchmark_figure(per_rule, figure_path),
        "benchmark_dir": str(benchmark_dir),
    }


def _yaml(params: dict) -> str:
    import yaml

    return yaml.safe_dump(params, sort_keys=True, default_flow_style=None, width=100)
