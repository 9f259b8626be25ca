"""What a report section gets: where results live, and helpers that emit self-contained HTML."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class ReportContext:
    """Paths plus HTML helpers. Every image is inlined as a data URI: the report works offline."""

    results: Path
    metrics: Path
    max_thumbnails: int = 12

    def exists(self, *parts: str) -> bool:
        return self.results.joinpath(*parts).exists()

    def read_json(self, path: Path | str) -> Any:
        return json.loads(Path(path).read_text())

    @staticmethod
    def esc(text: Any) -> str:
        return html.escape(str(text))

    def img(self, path: Path | str, caption: str = "", width: int | None = None) -> str:
        """An inlined image with an optional caption; a missing file renders as a note."""
        path = Path(path)
        if not path.exists():
            return f'<p class="missing">missing: {self.esc(path)}</p>'
        data = base64.b64encode(path.read_bytes()).decode()
        mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
        style = f' style="max-width:{width}px"' if width else ""
        cap = f"<figcaption>{self.esc(caption)}</figcaption>" if caption else ""
        return f'<figure><img src="data:{mime};base64,{data}"{style} alt="{self.esc(caption or path.name)}">{cap}</figure>'

    @staticmethod
    def fmt(value: Any) -> str:
        if isinstance(value, float):
            if math.isnan(value):
                return "nan"
            return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
        return str(value)

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
        """An HTML table from dict rows (columns default to the first row's keys)."""
        if not rows:
            return "<p><em>no rows</em></p>"
        columns = list(columns or rows[0].keys())
        head = "".join(f"<th>{self.esc(c)}</th>" for c in columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{self.esc(self.fmt(r.get(c, '')))}</td>" for c in columns)
            + "</tr>"
            for r in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def untrained_badge(self, weights: str | None) -> str:
        """A visible warning when a result comes from randomly initialised weights."""
        if weights and str(weights).startswith("random"):
            return (
                f'<span class="untrained">untrained backbone ({self.esc(weights)}): '
                "not a pretrained result</span>"
            )
        return ""
