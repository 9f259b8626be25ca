"""`reconlab report`: build the offline HTML report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reconlab.cli import add_params_args, load_section


def _run(args: argparse.Namespace) -> int:
    from reconlab.report.build import build_report

    cfg = load_section(args)
    params = None
    if args.effective_params:
        try:
            params = json.loads(args.effective_params)
        except json.JSONDecodeError as e:
            raise ValueError(f"--effective-params is not valid JSON ({e.msg})") from None
    titles = build_report(
        args.results, args.metrics, args.out, cfg["title"], cfg["max_thumbnails"],
        params=params, benchmarks=args.benchmarks, project=args.project, threads=args.threads,
    )  # fmt: skip
    size = args.out.stat().st_size / 1e6
    print(f"report: wrote {args.out} ({size:.1f} MB) with sections: {', '.join(titles) or 'none'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="build the offline HTML report from results/",
        description="One self-contained HTML file: provenance, run time per rule, a comparison "
        "viewer and one section per study (images inlined, no network needed to open it).",
    )
    add_params_args(p, "report")
    p.add_argument("--results", type=Path, default=Path("results"), help="results folder to read")
    p.add_argument("--metrics", type=Path, default=Path("metrics"), help="metrics folder to read")
    p.add_argument(
        "--out", type=Path, default=Path("reports/index.html"), help="HTML file to write"
    )
    p.add_argument(
        "--effective-params",
        metavar="JSON",
        help="the whole merged config as JSON, shown collapsed in the header (the rule passes it)",
    )
    p.add_argument(
        "--benchmarks",
        type=Path,
        default=None,
        help="Snakemake benchmark folder (default: <project>/logs/benchmarks)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="workers encoding the inlined images (default: every core this process may use)",
    )
    p.add_argument(
        "--project",
        type=Path,
        default=Path("."),
        help="project folder: git commit and dirty flag when no metrics file has a run block",
    )
    p.set_defaults(func=_run)
