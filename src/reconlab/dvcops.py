"""`reconlab sync`, `reconlab record`, `reconlab stamp-metrics`: DVC, Snakemake and metrics in step.

* ``sync`` — after a clone: ``dvc pull``, refresh the input manifests (``data/inputs``), refuse
  unless ``dvc status`` is clean, ``snakemake --touch`` with the configuration's overlays (the
  pulled files' mtimes are meaningless after a checkout), then check that ``snakemake -n`` with
  the same overlays has nothing to do.
* ``record`` — after a Snakemake run: copy the baseline configuration's metrics into
  ``metrics/`` (only the baseline's, ``offline`` unless config/configurations.yaml says) and
  ``dvc commit -f`` so dvc.lock describes what was produced (then ``git commit dvc.lock metrics``
  and ``dvc push``).
* ``stamp-metrics`` — what each metrics rule runs last: dot-free keys and the ``run`` block.

All three name a configuration the same way as every stage command: ``--config-name NAME``
and/or ``--configfile a.yaml [b.yaml ...]`` (see :func:`reconlab.cli.add_params_args`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from reconlab.cli import add_configuration_args

NOTHING_TO_DO = "Nothing to be done"


def _dvc(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dvc", *args]
    print("+ dvc " + " ".join(args), file=sys.stderr)
    return subprocess.run(cmd, check=False, text=True, capture_output=capture)


def _snakemake(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    print("+ snakemake " + " ".join(args), file=sys.stderr)
    cmd = [sys.executable, "-m", "snakemake", *args]
    return subprocess.run(cmd, check=False, text=True, capture_output=capture)


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        lines = (proc.stderr or "").strip().splitlines()
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:]
        detail = f": {errors[0]}" if errors else ""
        raise RuntimeError(f"{what} failed (exit {proc.returncode}){detail}")


def snakemake_overlay_args(overlays: Sequence[str]) -> list[str]:
    """``--configfile a b`` for Snakemake: all overlays after one flag (a repeated flag keeps
    only the last file)."""
    return ["--configfile", *overlays] if overlays else []


def sync(
    overlays: Sequence[str] = (),
    snakemake_args: Sequence[str] = (),
    remote: str | None = None,
    params: str = "params.yaml",
) -> None:
    """Pull, check, touch, verify. Raises RuntimeError naming the step that failed."""
    from reconlab.config import load_params
    from reconlab.inputs import input_manifests

    pull = ["pull"] + (["--remote", remote] if remote else [])
    _check(_dvc(*pull), "dvc pull")
    input_manifests(load_params(params, overlays))  # the data/inputs deps dvc status compares
    status = _dvc("status", "--json", capture=True)
    _check(status, "dvc status")
    changed = json.loads(status.stdout or "{}")
    if changed:
        raise RuntimeError(
            "dvc status is not clean after pull, refusing to touch outputs: "
            + json.dumps(changed, sort_keys=True)
        )
    args = [*snakemake_args, *snakemake_overlay_args(overlays)]
    _check(_snakemake("--touch", "--cores", "all", *args), "snakemake --touch")
    dry = _snakemake("-n", "--cores", "all", *args, capture=True)
    _check(dry, "snakemake -n")
    if NOTHING_TO_DO not in dry.stdout + dry.stderr:
        jobs = [line for line in (dry.stdout + dry.stderr).splitlines() if line.startswith("rule")]
        raise RuntimeError(
            f"after snakemake --touch, snakemake -n still plans {len(jobs)} job(s) "
            f"({', '.join(sorted({j.split()[1].rstrip(':') for j in jobs}))})"
        )


RUN_FILE = Path("config/run.yaml")


def recorded_args(config_name: str, overlays: Sequence[str]) -> str:
    """The Snakemake arguments naming a configuration, as dvc.yaml's ``${snakemake_args}``."""
    if not overlays:
        return f"--config config_name={config_name}"
    return " ".join(snakemake_overlay_args(overlays))


def set_recorded_configuration(config_name: str, overlays: Sequence[str]) -> bool:
    """Point config/run.yaml (dvc.yaml's vars) at this configuration; True when it changed."""
    import yaml

    text = RUN_FILE.read_text() if RUN_FILE.exists() else ""
    data = yaml.safe_load(text) or {}
    args = recorded_args(config_name, overlays)
    if data.get("snakemake_args") == args:
        return False
    lines = [line for line in text.splitlines() if not line.startswith("snakemake_args:")]
    RUN_FILE.parent.mkdir(parents=True, exist_ok=True)
    RUN_FILE.write_text("\n".join([*lines, f"snakemake_args: {args}"]) + "\n")
    return True


def record(config_name: str, overlays: Sequence[str] = ()) -> list[str]:
    """Publish the baseline's metrics (when ``config_name`` is it), point config/run.yaml at
    the configuration, then ``dvc commit -f`` (so dvc.lock's cmd names these overlays)."""
    from reconlab.provenance import baseline_name, metrics_dir, publish_metrics

    published = publish_metrics(config_name)
    if set_recorded_configuration(config_name, overlays):
        print(f"record: {RUN_FILE} now names configuration {config_name!r}")
    _check(_dvc("commit", "--force"), "dvc commit")
    baseline = baseline_name()
    if config_name == baseline:
        print(f"record: metrics/ matches {metrics_dir(config_name)} ({len(published)} changed)")
    else:
        print(
            f"record: configuration {config_name!r} is not the baseline ({baseline!r}): "
            f"metrics/ left as it is; its metrics are in {metrics_dir(config_name)}"
        )
    print("record: dvc.lock updated; now `git add dvc.lock metrics && git commit` and `dvc push`")
    return published


def _configuration(args: argparse.Namespace) -> tuple[str, list[str]]:
    from reconlab.provenance import resolve_configuration

    return resolve_configuration(args.config_name, args.configfile)


def _sync(args: argparse.Namespace) -> int:
    _, overlays = _configuration(args)
    extra = [a for a in args.snakemake_args if a != "--"]
    if any(a in ("--configfile", "--configfiles") for a in extra):
        raise ValueError(
            "overlays go before `--`, as for every command: "
            "`reconlab sync --configfile a.yaml b.yaml` or `--config-name NAME`"
        )
    sync(overlays, extra, args.remote, args.config)
    print("sync: artifacts pulled and marked up to date; `snakemake -n` has nothing to do")
    return 0


def _record(args: argparse.Namespace) -> int:
    name, overlays = _configuration(args)
    record(name, overlays)
    return 0


def _stamp(args: argparse.Namespace) -> int:
    from reconlab.provenance import run_block, stamp_metrics

    run = run_block(args.name, args.configfile)
    for path in args.metrics:
        stamp_metrics(path, run)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sync",
        help="dvc pull, check dvc status, snakemake --touch, check snakemake -n is empty",
        description=(
            "Bring a fresh clone up to date without recomputing: pull DVC artifacts, refuse if "
            "`dvc status` is not clean, `snakemake --touch` with the configuration's overlays, "
            "then check `snakemake -n` has nothing to do. Name the configuration as for every "
            "command: `reconlab sync --config-name smoke` or `--configfile a.yaml b.yaml`. "
            "Other snakemake arguments go after `--`."
        ),
    )
    add_configuration_args(p)
    p.add_argument("--config", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--remote", help="DVC remote to pull from (default: the repo's default)")
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="after --: to snakemake")
    p.set_defaults(func=_sync)

    p = sub.add_parser(
        "record",
        help="publish the baseline's metrics to metrics/, then dvc commit -f",
        description=(
            "Run after `snakemake`, with the same configuration, before `git commit` and "
            "`dvc push`. Only the baseline configuration (offline) updates metrics/."
        ),
    )
    add_configuration_args(p)
    p.set_defaults(func=_record)

    p = sub.add_parser(
        "stamp-metrics",
        help="add the run block (configuration, overlays, commit) to metrics JSON files",
        description="What every metrics rule runs last; keys lose their dots for dvc.",
    )
    p.add_argument("metrics", nargs="+", type=Path, help="metrics JSON files, rewritten")
    p.add_argument("--name", required=True, help="the configuration's name")
    p.add_argument(
        "--configfile", nargs="*", action="extend", default=[], metavar="YAML", help="overlays"
    )
    p.set_defaults(func=_stamp)
