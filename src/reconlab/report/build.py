"""Assemble the report: provenance header, run time per rule, comparison viewer, study sections.

Each section module of :mod:`reconlab.report.sections` defines ``TITLE``, ``ORDER`` and
``render(ctx) -> str | None`` (HTML from its jinja2 template, or None when its study produced
nothing, so a partial pipeline still gets a report). Sections are discovered, not listed.
The page is ``templates/report.html.j2``; everything is autoescaped and inlined (offline).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import os
import pkgutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
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
    threads: int | None = None,
) -> list[str]:
    """Write one self-contained HTML file; return the titles of the study sections that rendered.

    Args:
        results, metrics: the run's ``results/`` and ``metrics/`` folders.
        out: the HTML file to write (atomically).
        params: the effective params (all sections merged), shown collapsed; None hides them.
        benchmarks: Snakemake benchmark folder (default ``<project>/logs/benchmarks``).
        project: the project folder (git state when no metrics file has a ``run`` block).
        threads: workers encoding the inlined images (default: every core this process may
            use); the page is the same for any number.
    """
    results, metrics = Path(results), Path(metrics)
    project = Path(project) if project else Path.cwd()
    benchmarks = Path(benchmarks) if benchmarks else project / "logs" / "benchmarks"
    modules = discover_sections()
    variants = (params or {}).get("tokenizer", {}).get("variants") or sorted(
        p.parent.parent.name for p in (results / "tokenizer").glob("*/recon/index.json")
    )
    # Most of a report's time is WebP encoding of the inlined figures and viewer tiles, which
    # Pillow runs with the GIL released. The sections are rendered in this thread with a
    # placeholder for each figure while ``threads`` workers encode them (and build the
    # viewer); the placeholders are filled in at the end. matplotlib's pyplot (the timing
    # figure) is not thread-safe, so all drawing stays in this thread.
    workers = max(1, threads or len(os.sched_getaffinity(0)))
    with ThreadPoolExecutor(workers) as pool:
        ctx = ReportContext(results, metrics, max_thumbnails, encoder=pool)
        backbones = [m["backbone_id"] for m in decoder_results(ctx)]
        viewer_job = pool.submit(viewer_data, results, backbones, variants, max_thumbnails)
        sections = []
        for module in modules:
            body = module.render(ctx)
            if body is not None:
                anchor = module.__name__.rsplit(".", 1)[-1]
                sections.append({"anchor": anchor, "title": module.TITLE, "body": body})
        with tempfile.TemporaryDirectory() as tmp:
            prov = provenance(results, metrics, project, params, benchmarks, Path(tmp) / "t.png")
            png = prov["benchmark_png"]  # encoded here, before its temporary folder goes
            timing = figure(png, "wall time per rule") if png else None
        viewer = viewer_job.result()
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
    write_text(out, ctx.resolve(page))
    return [s["title"] for s in sections]
