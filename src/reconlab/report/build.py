"""Assemble the report: provenance header, run time per rule, comparison viewer, study sections.

Each section module of :mod:`reconlab.report.sections` defines ``TITLE``, ``ORDER`` and
``render(ctx) -> str | None`` (HTML from its jinja2 template, or None when its study produced
nothing, so a partial pipeline still gets a report). Sections are discovered, not listed.
The page is ``templates/report.html.j2``; everything is autoescaped and inlined (offline).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import pkgutil
import tempfile
from pathlib import Path

from reconlab import __version__
from reconlab.io import write_text
from reconlab.report import sections as _sections
from reconlab.report.context import ReportContext, figure, render
from reconlab.report.provenance import provenance
from reconlab.report.sections.decoder import load as decoder_results
from reconlab.report.viewer import viewer_data


def discover_sections() -> list:
    modules = [
        importlib.import_module(f"{_sections.__name__}.{m.name}")
        for m in pkgutil.iter_modules(_sections.__path__)
    ]
    return sorted(modules, key=lambda m: (m.ORDER, m.TITLE))


def build_report(
    results: Path,
    metrics: Path,
    out: Path,
    title: str = "reconlab report",
    max_thumbnails: int = 12,
    params: dict | None = None,
    benchmarks: Path | None = None,
    project: Path | None = None,
) -> list[str]:
    """Write one self-contained HTML file; return the titles of the study sections that rendered.

    Args:
        results, metrics: the run's ``results/`` and ``metrics/`` folders.
        out: the HTML file to write (atomically).
        params: the effective params (all sections merged), shown collapsed; None hides them.
        benchmarks: Snakemake benchmark folder (default ``<project>/logs/benchmarks``).
        project: the project folder (git state when no metrics file has a ``run`` block).
    """
    results, metrics = Path(results), Path(metrics)
    project = Path(project) if project else Path.cwd()
    benchmarks = Path(benchmarks) if benchmarks else project / "logs" / "benchmarks"
    ctx = ReportContext(results=results, metrics=metrics, max_thumbnails=max_thumbnails)
    sections = []
    for module in discover_sections():
        body = module.render(ctx)
        if body is not None:
            anchor = module.__name__.rsplit(".", 1)[-1]
            sections.append({"anchor": anchor, "title": module.TITLE, "body": body})
    variants = (params or {}).get("tokenizer", {}).get("variants") or sorted(
        p.parent.parent.name for p in (results / "tokenizer").glob("*/recon/index.json")
    )
    viewer = viewer_data(
        results, [m["backbone_id"] for m in decoder_results(ctx)], variants, max_thumbnails
    )
    with tempfile.TemporaryDirectory() as tmp:
        prov = provenance(results, metrics, project, params, benchmarks, Path(tmp) / "timing.png")
        timing = (
            figure(prov["benchmark_png"], "wall time per rule") if prov["benchmark_png"] else None
        )
        page = render(
            "report.html.j2",
            title=title,
            version=__version__,
            built=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            prov=prov,
            timing_figure=timing,
            viewer=viewer,
            data=viewer,
            sections=sections,
        )
    write_text(out, page)
    return [s["title"] for s in sections]
