"""`reconlab compare REV_A REV_B`: one offline HTML page comparing two revisions of the project.

For each revision (any git revision: a commit, a tag, ``HEAD~1``, a branch):

* headline metrics: every number of the git-tracked ``metrics/*.json`` (``git show REV:...``)
  and of each recorded configuration's ``results/metrics/<name>/*.json`` (DVC), side by side
  with the difference, changed rows first;
* changed params: every key of ``params.yaml`` and ``config/*.yaml`` whose value differs,
  ``old -> new``;
* figures: the study figures under ``results/`` as DVC recorded them at that revision
  (:class:`dvc.api.DVCFileSystem`, read from the local DVC cache or a remote). A revision's
  figures exist only if its outputs were recorded: run ``reconlab record`` (``dvc commit``)
  after the pipeline run and before ``git commit``; otherwise the page says "not recorded".
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

FIGURES = (
    "results/data/samples.png",
    "results/decoder/*/comparison.png",
    "results/decoder/*/loss_plot.png",
    "results/tokenizer/psnr_vs_bpp.png",
    "results/tokenizer/resolution_scaling.png",
    "results/sparse/improvement_heatmap.png",
    "results/diagnostics/*/maps.png",
)
RECORDED_METRICS = ("results/metrics/*/*.json",)


def git(project: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ValueError(f"git {' '.join(args)}: {proc.stderr.strip() or 'failed'}")
    return proc.stdout


def resolve(project: Path, rev: str) -> str:
    """The full commit of ``rev``; ValueError naming the revision when git does not know it."""
    try:
        return git(project, "rev-parse", "--verify", f"{rev}^{{commit}}").strip()
    except ValueError:
        raise ValueError(f"compare: {rev!r} is not a revision of {project}") from None


def files_at(project: Path, commit: str, folder: str, suffixes: tuple[str, ...]) -> dict[str, str]:
    """``{path: text}`` of the git-tracked files under ``folder`` at ``commit``."""
    try:
        names = git(project, "ls-tree", "-r", "--name-only", commit, "--", folder).split()
    except ValueError:
        return {}
    return {n: git(project, "show", f"{commit}:{n}") for n in names if n.endswith(suffixes)}


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


def metric_rows(a: dict[str, str], b: dict[str, str]) -> list[dict]:
    """One row per numeric metric in either revision: file, key, A, B, B - A; changed first."""
    rows = []
    for name in sorted(set(a) | set(b)):
        fa = flatten(json.loads(a[name])) if name in a else {}
        fb = flatten(json.loads(b[name])) if name in b else {}
        for key in sorted(set(fa) | set(fb)):
            if key.startswith("run."):
                continue
            va, vb = fa.get(key), fb.get(key)
            numbers = [
                v for v in (va, vb) if isinstance(v, (int, float)) and not isinstance(v, bool)
            ]
            if not numbers:
                continue
            delta = vb - va if len(numbers) == 2 and None not in (va, vb) else None
            rows.append({"file": name.removesuffix(".json"), "metric": key, "a": va, "b": vb, "delta": delta,
                         "changed": va != vb})  # fmt: skip
    return sorted(rows, key=lambda r: not r["changed"])


def param_changes(a: dict[str, str], b: dict[str, str]) -> list[dict]:
    """Every params key (params.yaml, config/*.yaml) whose value differs: file, key, A, B."""
    rows = []
    for name in sorted(set(a) | set(b)):
        fa = flatten(yaml.safe_load(a.get(name, "")) or {})
        fb = flatten(yaml.safe_load(b.get(name, "")) or {})
        for key in sorted(set(fa) | set(fb)):
            if fa.get(key, "(unset)") != fb.get(key, "(unset)"):
                rows.append({"file": name, "key": key, "a": fa.get(key, "(unset)"),
                             "b": fb.get(key, "(unset)")})  # fmt: skip
    return rows


def recorded_at(project: Path, commit: str, patterns: tuple[str, ...]) -> tuple[dict, str]:
    """``({path: bytes}, note)`` of the DVC-tracked files matching ``patterns`` at ``commit``."""
    try:
        from dvc.api import DVCFileSystem

        fs = DVCFileSystem(str(project), rev=commit)
        found: dict[str, bytes] = {}
        for pattern in patterns:
            for path in sorted(fs.glob(pattern)):
                with fs.open(path, "rb") as f:
                    found[str(path).lstrip("/")] = f.read()
    except Exception as e:  # noqa: BLE001 - any DVC failure becomes a note on the page
        return {}, f"not available ({type(e).__name__}: {str(e)[:200]})"
    note = "" if found else "nothing recorded (run `reconlab record` before committing)"
    return found, note


def figures_at(project: Path, commit: str) -> tuple[dict[str, bytes], str]:
    """``({path: PNG bytes}, note)`` of the study figures DVC recorded at ``commit``."""
    found, note = recorded_at(project, commit, FIGURES)
    return found, note and f"figures {note}"


def metrics_at(project: Path, commit: str) -> dict[str, str]:
    """Every metrics JSON of ``commit``: git's ``metrics/`` (the baseline) and, when recorded,
    each configuration's ``results/metrics/<name>/`` from DVC."""
    found = files_at(project, commit, "metrics", (".json",))
    recorded, _ = recorded_at(project, commit, RECORDED_METRICS)
    found.update({p: data.decode("utf-8") for p, data in recorded.items()})
    return found


def _uri(data: bytes | None) -> str | None:
    import base64

    return "data:image/png;base64," + base64.b64encode(data).decode() if data else None


def compare(project: Path, rev_a: str, rev_b: str, out: Path) -> dict:
    """Write the comparison page; returns the counts it shows."""
    from reconlab.io import write_text
    from reconlab.report.context import render
    from reconlab.report.tables import records_table

    project = Path(project)
    a, b = resolve(project, rev_a), resolve(project, rev_b)
    metrics = metric_rows(metrics_at(project, a), metrics_at(project, b))
    params_a = {**files_at(project, a, "params.yaml", (".yaml",)),
                **files_at(project, a, "config", (".yaml",))}  # fmt: skip
    params_b = {**files_at(project, b, "params.yaml", (".yaml",)),
                **files_at(project, b, "config", (".yaml",))}  # fmt: skip
    params = param_changes(params_a, params_b)
    figs_a, note_a = figures_at(project, a)
    figs_b, note_b = figures_at(project, b)
    figures = [
        {"path": p, "a": _uri(figs_a.get(p)), "b": _uri(figs_b.get(p))}
        for p in sorted(set(figs_a) | set(figs_b))
    ]
    labels = {"file": "file", "metric": "metric", "a": rev_a, "b": rev_b, "delta": "B - A"}
    page = render(
        "compare.html.j2",
        rev_a=rev_a, rev_b=rev_b, commit_a=a, commit_b=b,
        built=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        metrics=records_table(metrics, labels),
        changed=sum(r["changed"] for r in metrics),
        params=records_table(params, {"file": "file", "key": "key", "a": rev_a, "b": rev_b}),
        figures=figures, note_a=note_a, note_b=note_b,
    )  # fmt: skip
    write_text(out, page)
    return {"metrics": len(metrics), "changed_metrics": sum(r["changed"] for r in metrics),
            "changed_params": len(params), "figures": len(figures)}  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    counts = compare(args.project, args.rev_a, args.rev_b, args.out)
    print(
        f"compare: wrote {args.out}: {counts['changed_metrics']} of {counts['metrics']} metrics "
        f"changed, {counts['changed_params']} params changed, {counts['figures']} figures"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="one offline HTML page: two revisions' metrics, changed params and figures",
        description="Compare two git revisions: headline metrics (metrics/*.json), changed "
        "params (params.yaml, config/*.yaml) and the study figures DVC recorded at each. "
        "Figures of a revision exist only if `reconlab record` ran before its commit.",
    )
    p.add_argument("rev_a", help="the first git revision (e.g. HEAD~1, a tag or a commit)")
    p.add_argument("rev_b", help="the second git revision (e.g. HEAD)")
    p.add_argument(
        "--out", type=Path, default=Path("reports/compare.html"), help="HTML file to write"
    )
    p.add_argument("--project", type=Path, default=Path("."), help="the project's git repository")
    p.set_defaults(func=_run)
