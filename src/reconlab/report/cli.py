"""`reconlab report`: build the offline HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from reconlab.cli import add_params_args, load_section


def _run(args: argparse.Namespace) -> int:
    from reconlab.report.build import build_report

    cfg = load_section(args)
    titles = build_report(args.results, args.metrics, args.out, cfg["title"], cfg["max_thumbnails"])
    print(f"report: wrote {args.out} with sections: {', '.join(titles) or 'none'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="build the offline HTML report from results/")
    add_params_args(p, "report")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--metrics", type=Path, default=Path("metrics"))
    p.add_argument("--out", type=Path, default=Path("reports/index.html"))
    p.set_defaults(func=_run)
