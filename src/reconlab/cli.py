"""`reconlab <stage> ...`: every Snakemake rule is one call of this CLI, and each is usable by hand.

Stage commands live next to their science (``reconlab/<stage>/cli.py``) and register here through
:data:`COMMAND_MODULES`; each module exposes ``register(subparsers)``. Heavy imports (torch, timm,
matplotlib) happen inside the command functions, so ``reconlab --help`` answers instantly.

Every stage command reads its params section in one of two ways:

* ``--params JSON`` — the section as canonical JSON (what the Snakemake rules pass), or
* ``--config params.yaml [--config-name NAME] [--configfile a.yaml b.yaml ...]`` — by hand,
  validated like Snakemake does.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

COMMAND_MODULES = [
    "reconlab.data.cli",
    "reconlab.features.cli",
    "reconlab.decoder.cli",
    "reconlab.tokenizer.cli",
    "reconlab.diagnostics.cli",
    "reconlab.sparse.cli",
    "reconlab.report.cli",
    "reconlab.dvcops",
    "reconlab.status",
    "reconlab.compare",
    "reconlab.plots_template",
]


def add_configuration_args(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--configfile a.yaml [b.yaml ...]`` (also repeatable) and ``--config-name NAME``.

    The one way every entry point names a configuration: overlays merged over params.yaml in
    order, as ``snakemake --configfile a.yaml b.yaml``; a name from config/configurations.yaml
    stands for its overlays (``snakemake --config config_name=NAME``).
    """
    parser.add_argument(
        "--configfile",
        nargs="+",
        action="extend",
        default=[],
        metavar="YAML",
        help="overlays merged in order: --configfile a.yaml b.yaml, as with snakemake",
    )
    parser.add_argument(
        "--config-name",
        metavar="NAME",
        help="a configuration of config/configurations.yaml (its overlays come first)",
    )


def add_params_args(parser: argparse.ArgumentParser, section: str) -> None:
    """Add ``--params`` / ``--config`` / ``--configfile`` / ``--config-name`` for ``section``."""
    group = parser.add_argument_group(f"params (the '{section}' section)")
    group.add_argument("--params", metavar="JSON", help=f"the '{section}' section as JSON")
    group.add_argument(
        "--config", default="params.yaml", help="params file when --params is not given"
    )
    add_configuration_args(group)
    parser.set_defaults(_section=section)


def load_section(args: argparse.Namespace, section: str | None = None) -> dict:
    """The validated params section a command asked for (defaults filled); loaded once per
    process and section (:func:`main` loads the command's own section before the command
    runs, so bad params fail in a fraction of a second, before torch is imported)."""
    section = section or args._section
    loaded = args.__dict__.setdefault("_loaded_sections", {})
    if section not in loaded:
        loaded[section] = _read_section(args, section)
    return loaded[section]


def _read_section(args: argparse.Namespace, section: str) -> dict:
    from reconlab.config import ParamsError, load_params, validate_params

    if args.params is not None:
        try:
            values = json.loads(args.params)
        except json.JSONDecodeError as e:
            raise SystemExit(f"error: --params is not valid JSON ({e.msg})") from None
        return validate_params({section: values})[section]
    from reconlab.provenance import resolve_configuration

    overlays = list(args.configfile)
    if args.config_name is not None:
        # A named configuration's overlays are relative to the project (params.yaml's folder).
        root = Path(args.config).parent
        try:
            _, named = resolve_configuration(args.config_name, (), root)
        except ValueError as e:
            raise ParamsError(f"params: {e}") from None
        overlays = [root / p for p in named] + overlays
    return load_params(args.config, overlays)[section]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconlab",
        description=(
            "Reproducible image-reconstruction studies. The pipeline is normally run with "
            "`snakemake --cores all`; each stage below is what one Snakemake rule calls."
        ),
    )
    parser.add_argument("--version", action="version", version=f"reconlab {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    _register_info(sub)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reconlab")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown (not installed)"


def _register_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="this machine: CPU class, cores, GPU, torch, and what precision: auto resolves to",
        description=(
            "Print the facts reconlab's speed choices depend on (CPU model and PyTorch dispatch "
            "capability, native bf16, cores, GPU, torch version) and what `precision: auto` "
            "resolves to for each kind of op, with the reason (decision 9 of ARCHITECTURE.md). "
            "Takes under a second: the bf16 probe is a few small training steps."
        ),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--reprobe",
        action="store_true",
        help="forget this machine's kept bf16 probe results and measure again (the kept result "
        "makes every run on a machine choose the same precision)",
    )
    p.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    from reconlab.runtime import OP_KINDS, machine_report, probe_record_path

    # the table says what the per-stage "compute: ..." log lines would repeat
    logging.getLogger("reconlab").setLevel(logging.WARNING)
    if args.reprobe:
        for kind in OP_KINDS:
            probe_record_path(kind).unlink(missing_ok=True)
    report = {"reconlab": _version(), **machine_report()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for key, value in report.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        print(f"{key:<22} {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from reconlab.config import ParamsError

    parser = build_parser()
    args = parser.parse_args(argv)
    # One logger for the package; warnings (e.g. a slow precision choice) reach the job's log.
    logging.basicConfig(format="reconlab: %(levelname)s: %(message)s", level=logging.WARNING)
    logging.getLogger("reconlab").setLevel(logging.INFO)
    try:
        if getattr(args, "_section", None) and getattr(args, "cell_config", None) is None:
            load_section(args)  # validate first: commands import their heavy modules after
        result = args.func(args)
    except (ParamsError, OSError, ValueError, RuntimeError) as e:  # OSError: full disk, read-only
        # One line, naming the file or key; the traceback helps nobody running a pipeline
        # (RECONLAB_DEBUG=1 shows it when developing).
        if os.environ.get("RECONLAB_DEBUG"):
            raise
        print(f"reconlab {args.command}: error: {e}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
