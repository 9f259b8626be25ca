"""`reconlab prepare-images`, `reconlab make-fields`, `reconlab summarize-data`."""

from __future__ import annotations

import argparse
from pathlib import Path

from reconlab.cli import add_params_args, load_section


def _prepare_images(args: argparse.Namespace) -> int:
    from reconlab.config import DataConfig, from_section
    from reconlab.data.images import prepare_images

    cfg = from_section(DataConfig, load_section(args))
    s = prepare_images(cfg, args.out)
    print(
        f"prepare-images: {sum(s.crops.values())} crops from {sum(s.sources.values())} photos "
        f"(train/val/test crops {s.crops['train']}/{s.crops['val']}/{s.crops['test']}), "
        f"{s.rejected} rejected -> {args.out}"
    )
    return 0


def _make_fields(args: argparse.Namespace) -> int:
    from reconlab.config import FieldsConfig, from_section
    from reconlab.data.fields import make_fields

    cfg = from_section(FieldsConfig, load_section(args))
    index = make_fields(cfg, args.out)
    counts = {s: v["count"] for s, v in index["splits"].items()}
    print(f"make-fields: {counts} fields of {cfg.size}x{cfg.size} -> {args.out}")
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from reconlab.data.summary import summarize_data

    m = summarize_data(args.prepared, args.metrics, args.figures)
    print(f"summarize-data: crops {m['images']['crops']}, fields {m['fields']['count']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare-images",
        help="photos -> train/val/test crops, manifest.csv, rejected.csv",
        description="Decode, deduplicate, split by source photo, crop. Reads the 'data' section.",
    )
    add_params_args(p, "data")
    p.add_argument("--out", type=Path, default=Path("data/prepared"), help="output folder")
    p.set_defaults(func=_prepare_images)

    p = sub.add_parser(
        "make-fields",
        help="synthetic 2-D fields (six families) for the sparse-query study",
        description="Deterministic fields in [0, 1] as .npz per split. Reads the 'fields' section.",
    )
    add_params_args(p, "fields")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("data/prepared/fields"),
        help="folder to write the fields to",
    )
    p.set_defaults(func=_make_fields)

    p = sub.add_parser("summarize-data", help="data metrics (for dvc) and figures")
    p.add_argument(
        "--prepared",
        type=Path,
        default=Path("data/prepared"),
        help="the prepared data folder (manifest.csv, rejected.csv, fields/)",
    )
    p.add_argument(
        "--metrics",
        type=Path,
        default=Path("metrics/data.json"),
        help="metrics JSON to write",
    )
    p.add_argument(
        "--figures",
        type=Path,
        default=Path("results/data"),
        help="folder for samples.png and fields.png",
    )
    p.set_defaults(func=_summarize)
