"""`reconlab cache-features` and `reconlab summarize-features`."""

from __future__ import annotations

import argparse
from pathlib import Path

from reconlab.cli import add_params_args, load_section


def _cache(args: argparse.Namespace) -> int:
    from reconlab.features.build import cache_features

    cfg = load_section(args)
    out = args.out or Path("data/features") / args.backbone
    index = cache_features(cfg, args.backbone, args.prepared, out, progress_bar=not args.quiet)
    counts = ", ".join(f"{s} {v['count']}" for s, v in index["splits"].items())
    badge = " (UNTRAINED)" if index["untrained"] else ""
    print(
        f"cache-features: {out}: {index['model']} weights {index['weights_id']}{badge}, "
        f"{index['image_size'][0]}x{index['image_size'][1]} px -> grid "
        f"{index['grid'][0]}x{index['grid'][1]}, {index['dtype']}; {counts}"
    )
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from reconlab.features.summary import features_metrics, summarize_caches
    from reconlab.io import write_json

    rows = summarize_caches(args.caches)
    write_json(args.out, {"backbones": rows})
    if args.metrics:
        write_json(args.metrics, features_metrics(rows))
    print(f"summarize-features: {len(rows)} verified caches -> {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache-features", help="cache one backbone's CLS and patch tokens of the prepared images"
    )
    add_params_args(p, "features")
    p.add_argument("--backbone", required=True, help="a features.backbones[*].id")
    p.add_argument(
        "--prepared",
        type=Path,
        default=Path("data/prepared"),
        help="the prepared data folder (manifest.csv, images/)",
    )
    p.add_argument("--out", type=Path, help="cache folder (default data/features/<backbone>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cache)

    p = sub.add_parser("summarize-features", help="verify caches and write their summary")
    p.add_argument("caches", type=Path, nargs="+", help="cache folders (data/features/<id>)")
    p.add_argument("--out", type=Path, required=True, help="summary JSON")
    p.add_argument("--metrics", type=Path, help="small per-backbone metrics JSON for DVC")
    p.set_defaults(func=_summarize)
