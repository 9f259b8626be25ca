"""What a report section gets: where results live, readers (JSON, pandas), inlined figures, and
the jinja2 environment (autoescaping on) that renders every piece of the page.

Every image is inlined as a data URI, so the report is one offline file. Figures saved by
:func:`reconlab.figures.save_figure` are 2x resolution and shown at half their pixel size,
which is the size their fonts were set for (>= 9 pt at 100 % zoom).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from reconlab.figures import read_audit

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def environment() -> jinja2.Environment:
    """The jinja2 environment of the report: package templates, autoescape, strict undefined."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PACKAGE_DIR / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = static
    env.filters["human"] = lambda key: str(key).replace("_", " ")
    return env


def static(name: str) -> Markup:
    """A file of ``report/static`` (CSS, JS: trusted package files) to inline in the page."""
    return Markup((PACKAGE_DIR / "static" / name).read_text())


def render(template: str, **values: Any) -> str:
    """Render ``templates/<template>`` with ``values`` (autoescaped)."""
    return environment().get_template(template).render(**values)


# A figure whose lossless encoding is larger than this is inlined as WebP at quality 90, when
# smaller: photo grids at 2x resolution shrink ~5x and their text stays sharp. The exact pixels
# stay in results/, and the viewer's tiles are always lossless (its |error| view needs them).
LOSSY_FIGURE_BYTES = 300_000


def data_uri(path: Path | str, lossy_above: int | None = None) -> str:
    """The file as a data URI. A PNG is re-encoded as lossless WebP when that is smaller
    (identical pixels, 20-60 % fewer bytes); with ``lossy_above``, a result still larger than
    that many bytes becomes WebP quality 90 (figures only)."""
    path = Path(path)
    data = path.read_bytes()
    mime = MIME.get(path.suffix.lower(), "application/octet-stream")
    if mime == "image/png":
        webp = webp_bytes(path)
        if len(webp) < len(data):
            mime, data = "image/webp", webp
        if lossy_above is not None and len(data) > lossy_above:
            lossy = webp_bytes(path, quality=90)
            if len(lossy) < len(data):
                mime, data = "image/webp", lossy
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def webp_bytes(source: Any, quality: int | None = None) -> bytes:
    """A file path or PIL image as WebP bytes: lossless, or lossy at ``quality`` (1-100)."""
    import io

    from PIL import Image

    im = source if isinstance(source, Image.Image) else Image.open(source)
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    buf = io.BytesIO()
    if quality is None:
        im.save(buf, format="WEBP", lossless=True, method=4)
    else:
        im.save(buf, format="WEBP", quality=quality, method=4)
    return buf.getvalue()


def lossless_webp(source: Any) -> bytes:
    """:func:`webp_bytes`, lossless (identical pixels)."""
    return webp_bytes(source)


@dataclass(frozen=True)
class Figure:
    """An inlined image: ``src`` (data URI), display ``width`` in CSS px, caption, or missing."""

    caption: str
    src: str = ""
    width: int | None = None
    missing: str = ""


def figure(path: Path | str, caption: str = "", encode: Callable[..., str] | None = None) -> Figure:
    """An inlined figure; a missing file becomes a visible "missing: <path>" note.

    ``encode`` (default: now, in this thread) is how :func:`data_uri` gets called:
    :meth:`ReportContext.defer` hands it to a thread pool and returns a placeholder.
    """
    path = Path(path)
    if not path.exists():
        return Figure(caption, missing=str(path))
    width = None
    if path.suffix.lower() == ".png":
        from PIL import Image

        with Image.open(path) as im:
            width = im.width // 2 if read_audit(path) else im.width
    if encode is None:
        return Figure(caption, data_uri(path, lossy_above=LOSSY_FIGURE_BYTES), width)
    return Figure(caption, encode(data_uri, path, lossy_above=LOSSY_FIGURE_BYTES), width)


PENDING = re.compile(r"reconlab-pending-(\d+)\.")  # letters, digits, '-', '.': no escaping


def is_untrained(weights: Any) -> bool:
    return bool(weights) and str(weights).startswith("random")


@dataclass(frozen=True)
class ReportContext:
    """Paths of one run's outputs, plus readers; sections take everything they show from here."""

    results: Path
    metrics: Path
    max_thumbnails: int = 12
    encoder: Executor | None = None  # where figures are encoded; None: at once, in the caller
    pending: dict[int, Future] = field(default_factory=dict)
    _tickets: Any = field(default_factory=itertools.count)

    def exists(self, *parts: str) -> bool:
        return self.results.joinpath(*parts).exists()

    def read_json(self, path: Path | str) -> Any:
        return json.loads(Path(path).read_text())

    def read_table(self, path: Path | str) -> pd.DataFrame:
        """A CSV as a typed data frame (numbers as numbers, True/False as booleans)."""
        return pd.read_csv(path, keep_default_na=True)

    def figure(self, path: Path | str, caption: str = "") -> Figure:
        return figure(path, caption, self.defer)

    def defer(self, fn: Callable[..., str], *args: Any, **kwargs: Any) -> str:
        """``fn(*args, **kwargs)`` (a string for the page) on :attr:`encoder`; until
        :meth:`resolve`, a placeholder stands in its place. Without an encoder: called now."""
        if self.encoder is None:
            return fn(*args, **kwargs)
        ticket = next(self._tickets)
        self.pending[ticket] = self.encoder.submit(fn, *args, **kwargs)
        return f"reconlab-pending-{ticket}."

    def resolve(self, page: str) -> str:
        """``page`` with every placeholder of :meth:`defer` replaced by its result (one pass)."""
        return PENDING.sub(lambda m: self.pending[int(m.group(1))].result(), page)

    def render(self, template: str, **values: Any) -> str:
        return render(template, ctx=self, **values)
