"""Content hash of the report's templates and static files (Jinja2, CSS, JS).

The Snakefile passes it as a param of the report rule, so editing a template rebuilds the report
(the code hash covers Python modules only). Standard library only: imported at DAG-build time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

ASSET_DIRS = ("templates", "static")
REPORT_DIR = Path(__file__).resolve().parent


def assets_hash(root: Path = REPORT_DIR) -> str:
    """sha256 (16 hex digits) over every file below ``templates/`` and ``static/``, by path."""
    h = hashlib.sha256()
    for folder in ASSET_DIRS:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
