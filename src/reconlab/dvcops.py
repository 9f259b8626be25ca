"""`reconlab sync` and `reconlab record`: keep DVC's artifacts and Snakemake's view in step.

* ``sync`` — after a clone: ``dvc pull``, refuse unless ``dvc status`` is clean, then
  ``snakemake --touch`` so the pulled files' mtimes (meaningless after a checkout) make
  Snakemake report "Nothing to be done" instead of recomputing everything.
* ``record`` — after a Snakemake run: ``dvc commit -f`` so dvc.lock describes what was produced
  (then ``git commit dvc.lock metrics/`` and ``dvc push``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence


def _dvc(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dvc", *args]
    print("+ dvc " + " ".join(args), file=sys.stderr)
    return subprocess.run(cmd, check=False, text=True, capture_output=capture)


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        lines = (proc.stderr or "").strip().splitlines()
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:]
        detail = f": {errors[0]}" if errors else ""
        raise RuntimeError(f"{what} failed (exit {proc.returncode}){detail}")


def sync(snakemake_args: Sequence[str] = (), remote: str | None = None) -> None:
    pull = ["pull"] + (["--remote", remote] if remote else [])
    _check(_dvc(*pull), "dvc pull")
    status = _dvc("status", "--json", capture=True)
    _check(status, "dvc status")
    changed = json.loads(status.stdout or "{}")
    if changed:
        raise RuntimeError(
            "dvc status is not clean after pull, refusing to touch outputs: "
            + json.dumps(changed, sort_keys=True)
        )
    cmd = [sys.executable, "-m", "snakemake", "--touch", "--cores", "all", *snakemake_args]
    print("+ snakemake --touch --cores all " + " ".join(snakemake_args), file=sys.stderr)
    _check(subprocess.run(cmd, check=False, text=True), "snakemake --touch")


def record() -> None:
    _check(_dvc("commit", "--force"), "dvc commit")
    print("record: dvc.lock updated; now `git add dvc.lock metrics && git commit` and `dvc push`")


def _sync(args: argparse.Namespace) -> int:
    sync(args.snakemake_args, args.remote)
    print("sync: artifacts pulled and marked up to date; `snakemake -n` should have nothing to do")
    return 0


def _record(args: argparse.Namespace) -> int:
    record()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sync",
        help="dvc pull, check dvc status is clean, then snakemake --touch",
        description=(
            "Bring a fresh clone up to date without recomputing: pull DVC artifacts, refuse if "
            "`dvc status` is not clean, then `snakemake --touch`. Extra arguments after `--` go "
            "to snakemake, e.g. `reconlab sync -- --configfile config/offline.yaml`."
        ),
    )
    p.add_argument("--remote", help="DVC remote to pull from (default: the repo's default)")
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="passed to snakemake")
    p.set_defaults(func=_sync)

    p = sub.add_parser(
        "record",
        help="dvc commit -f: make dvc.lock match what Snakemake produced",
        description="Run after `snakemake --cores all`, before `git commit` and `dvc push`.",
    )
    p.set_defaults(func=_record)
