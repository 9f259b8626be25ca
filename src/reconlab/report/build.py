"""Assemble the report from the section modules in :mod:`reconlab.report.sections`.

Each section module defines ``TITLE``, ``ORDER`` and ``render(ctx) -> str | None``; it returns
None when its study produced nothing (so a partial pipeline still gets a report).
Sections are discovered, not listed: adding a study's section is adding one file.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import pkgutil
from pathlib import Path

from reconlab import __version__
from reconlab.io import write_text
from reconlab.report import sections as _sections
from reconlab.report.context import ReportContext

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}
figure{display:inline-block;margin:.5em}figure img{max-width:100%}
figcaption{font-size:.85em;color:#555;text-align:center}
.untrained{background:#fde2e2;color:#900;padding:2px 6px;border-radius:3px;font-weight:bold}
.missing{color:#900}nav a{margin-right:1em}
"""


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
) -> list[str]:
    """Write one self-contained HTML file; return the titles of the sections that rendered."""
    ctx = ReportContext(results=Path(results), metrics=Path(metrics), max_thumbnails=max_thumbnails)
    parts, rendered = [], []
    for module in discover_sections():
        body = module.render(ctx)
        if body is None:
            continue
        anchor = module.__name__.rsplit(".", 1)[-1]
        parts.append(f'<section id="{anchor}"><h2>{ctx.esc(module.TITLE)}</h2>{body}</section>')
        rendered.append((anchor, module.TITLE))
    nav = "".join(f'<a href="#{a}">{ctx.esc(t)}</a>' for a, t in rendered)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{ctx.esc(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{ctx.esc(title)}</h1>"
        f"<p>reconlab {__version__} · built {stamp} · offline, self-contained</p>"
        f"<nav>{nav}</nav>{''.join(parts)}</body></html>\n"
    )
    write_text(out, page)
    return [t for _, t in rendered]
