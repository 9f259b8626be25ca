"""`reconlab dino-diagnostics`, `reconlab compare-backbones`, `reconlab summarize-diagnostics`."""

from __future__ import annotations

import argparse
from pathlib import Path

from reconlab.cli import add_params_args, load_section


def _config(args: argparse.Namespace):
    from reconlab.config import DiagnosticsConfig, from_section

    return from_section(DiagnosticsConfig, load_section(args))


def _diagnose(args: argparse.Namespace) -> int:
    from reconlab.diagnostics.run import diagnose_backbone

    m = diagnose_backbone(args.cache, args.prepared, _config(args), args.out)
    badge = " (UNTRAINED)" if m["untrained"] else ""
    print(
        f"dino-diagnostics: {args.out}: {m['backbone_id']} weights {m['weights']}{badge}; "
        f"smoothness {m['smoothness_mean']}, recall@1 cls {m.get('retrieval_recall_at_1_cls')} "
        f"mean {m.get('retrieval_recall_at_1_mean')} over {m['retrieval_items']} crops of "
        f"{m['retrieval_sources']} photos"
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    from reconlab.diagnostics.run import compare_backbones

    r = compare_backbones(args.caches, args.prepared, _config(args), args.figure, args.out)
    badge = " (UNTRAINED)" if r["untrained"] else ""
    print(
        f"compare-backbones: {args.figure}: {' vs '.join(r['backbones'])}{badge} at grid "
        f"{r['grid'][0]}x{r['grid'][1]}"
    )
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from reconlab.diagnostics.summary import summarize

    s = summarize(args.metrics, args.compare, args.out)
    print(
        f"summarize-diagnostics: {args.out}: {len(s['backbones'])} backbone(s), "
        f"{len(s['compare'])} pair(s)"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dino-diagnostics",
        help="PCA maps, smoothness, reference-patch maps and retrieval of one feature cache",
    )
    add_params_args(p, "diagnostics")
    p.add_argument("--cache", type=Path, required=True, help="a feature cache (data/features/<id>)")
    p.add_argument(
        "--prepared",
        type=Path,
        default=Path("data/prepared"),
        help="the prepared data folder (manifest.csv, images/)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=_diagnose)

    p = sub.add_parser(
        "compare-backbones", help="two backbones side by side at an equal patch grid"
    )
    add_params_args(p, "diagnostics")
    p.add_argument("caches", type=Path, nargs=2, help="two feature caches (DINOv2 first)")
    p.add_argument(
        "--prepared",
        type=Path,
        default=Path("data/prepared"),
        help="the prepared data folder (manifest.csv, images/)",
    )
    p.add_argument("--figure", type=Path, required=True, help="output PNG")
    p.add_argument("--out", type=Path, required=True, help="output JSON")
    p.set_defaults(func=_compare)

    p = sub.add_parser(
        "summarize-diagnostics", help="collect the diagnostics' scalars for dvc metrics"
    )
    p.add_argument("--metrics", type=Path, nargs="*", default=[], help="per-backbone metrics.json")
    p.add_argument("--compare", type=Path, nargs="*", default=[], help="compare-backbones JSONs")
    p.add_argument("--out", type=Path, required=True, help="metrics/diagnostics.json")
    p.set_defaults(func=_summarize)
