"""`reconlab sparse-cell | sparse-round | sparse-final | sparse-baselines | sparse-overfit |
sparse-aggregate`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reconlab.cli import add_params_args, load_section


def _cell(args: argparse.Namespace) -> int:
    from reconlab.sparse.grid import cell_config
    from reconlab.sparse.study import run_cell

    if args.cell_config is not None:  # what the rule passes: exactly this cell's settings
        cfg = json.loads(args.cell_config)
    else:
        cfg = cell_config(load_section(args), args.cell)
    r = run_cell(cfg, args.cell, args.seed, args.fields, args.out)
    split = cfg["eval_splits"][-1]
    print(
        f"sparse-cell {args.cell} seed {args.seed}: {split} PSNR {r[split]['all']['psnr']:.2f} dB"
    )
    return 0


def _final(args: argparse.Namespace) -> int:
    from reconlab.sparse.study import run_final

    r = run_final(load_section(args), args.record, args.seed, args.fields, args.out)
    split = r["config"]["eval_splits"][-1]
    print(
        f"sparse-final {r['cell']} seed {args.seed}: {split} PSNR {r[split]['all']['psnr']:.2f} dB"
    )
    return 0


def _round(args: argparse.Namespace) -> int:
    from reconlab.sparse.study import run_round

    rec = run_round(load_section(args), args.round, args.cells, args.previous, args.out)
    print(f"sparse-round {args.round}: best so far {rec['best_so_far']}; next {rec['next']}")
    return 0


def _baselines(args: argparse.Namespace) -> int:
    from reconlab.sparse.study import run_baselines

    run_baselines(load_section(args), args.fields, args.out)
    return 0


def _overfit(args: argparse.Namespace) -> int:
    from reconlab.sparse.study import run_overfit

    run_overfit(load_section(args), args.fields, args.out)
    return 0


def _aggregate(args: argparse.Namespace) -> int:
    from reconlab.sparse.aggregate import aggregate

    s = aggregate(
        load_section(args),
        args.rounds,
        args.cells,
        args.final,
        args.baselines,
        args.overfit,
        args.out,
        args.metrics,
    )
    print(
        f"sparse-aggregate: best {s['best_cell']} {s['best_psnr']:.2f} dB; "
        f"fixed-query ablation {s['fixed_query_ablation_psnr']}; overfit {s['overfit_psnr']} dB"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    fields_help = "folder of {train,val,test}.npz + index.json (make-fields output)"
    p = sub.add_parser("sparse-cell", help="train + evaluate one technique cell with one seed")
    add_params_args(p, "sparse")
    p.add_argument("--cell-config", metavar="JSON", help="this cell's config (overrides --params)")
    from reconlab.sparse.grid import ABLATION, BASELINE, STORED
    from reconlab.sparse.techniques import TECHNIQUES  # the registry: imports nothing heavy

    p.add_argument(
        "--cell",
        required=True,
        help=f"'{BASELINE}', '{ABLATION}' (fixed-query ablation), '{STORED}' (stored-data "
        f"ablation), or techniques joined by '+' (e.g. adaln+ema) from: {', '.join(TECHNIQUES)}",
    )
    p.add_argument("--seed", type=int, default=0, help="training seed of this run of the cell")
    p.add_argument("--fields", type=Path, default=Path("data/prepared/fields"), help=fields_help)
    p.add_argument("--out", type=Path, required=True, help="folder for metrics.json, samples.png")
    p.set_defaults(func=_cell)

    p = sub.add_parser(
        "sparse-final", help="retrain the search's best cell with sparse.final's longer budget"
    )
    add_params_args(p, "sparse")
    p.add_argument("--record", type=Path, required=True, help="the last greedy round's record")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--fields", type=Path, default=Path("data/prepared/fields"), help=fields_help)
    p.add_argument("--out", type=Path, required=True, help="folder for metrics.json, samples.png")
    p.set_defaults(func=_final)

    p = sub.add_parser("sparse-round", help="score one greedy round and decide the next cells")
    add_params_args(p, "sparse")
    p.add_argument(
        "--round",
        type=int,
        required=True,
        help="greedy round number k (1 = the single techniques)",
    )
    p.add_argument(
        "--cells",
        type=Path,
        nargs="*",
        default=[],
        help="metrics.json of every cell and seed of this round",
    )
    p.add_argument("--previous", type=Path, help="round k-1's record (rounds > 1)")
    p.add_argument("--out", type=Path, required=True, help="round record JSON to write")
    p.set_defaults(func=_round)

    p = sub.add_parser("sparse-baselines", help="interpolation baselines on the same masks")
    add_params_args(p, "sparse")
    p.add_argument("--fields", type=Path, default=Path("data/prepared/fields"), help=fields_help)
    p.add_argument("--out", type=Path, required=True, help="baselines JSON to write")
    p.set_defaults(func=_baselines)

    p = sub.add_parser("sparse-overfit", help="capacity check: fit one field (expect >= 40 dB)")
    add_params_args(p, "sparse")
    p.add_argument("--fields", type=Path, default=Path("data/prepared/fields"), help=fields_help)
    p.add_argument("--out", type=Path, required=True, help="overfit-check JSON to write")
    p.set_defaults(func=_overfit)

    p = sub.add_parser("sparse-aggregate", help="matrix, ranking, heatmap and summary of the grid")
    add_params_args(p, "sparse")
    p.add_argument(
        "--rounds", type=Path, nargs="+", required=True, help="the round records, round 1 first"
    )
    p.add_argument(
        "--cells",
        type=Path,
        nargs="+",
        required=True,
        help="metrics.json of every grid and ablation cell and seed",
    )
    p.add_argument(
        "--final", type=Path, nargs="*", default=[], help="metrics.json of each final-cell seed"
    )
    p.add_argument("--baselines", type=Path, required=True, help="the baselines JSON")
    p.add_argument("--overfit", type=Path, required=True, help="the overfit-check JSON")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results/sparse"),
        help="folder for the summary, tables and figures",
    )
    p.add_argument(
        "--metrics",
        type=Path,
        default=Path("metrics/sparse.json"),
        help="small metrics JSON to write (for dvc metrics diff)",
    )
    p.set_defaults(func=_aggregate)
