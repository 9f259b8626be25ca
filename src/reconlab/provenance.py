"""Content hashes of source files, used by Snakemake rules as rerun triggers (decision 2).

A rule lists the modules it runs; the hash goes into the rule's ``params:``, so editing one of
those files reruns that rule (and what depends on it) and nothing else. Kept free of heavy
imports: the Snakefile imports this at DAG-build time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def source_hash(*modules: str, root: Path = PACKAGE_ROOT) -> str:
    """sha256 over the named files or folders (relative to the ``reconlab`` package), in order.

    Folders contribute every ``*.py`` below them, sorted. A missing path is an error, so a rule
    that names a file that was renamed fails at DAG-build time instead of silently never
    rerunning.
    """
    h = hashlib.sha256()
    for module in modules:
        path = root / module
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"source_hash: {path} does not exist")
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(b"\0")
            h.update(f.read_bytes())
            h.update(b"\0")
    return h.hexdigest()[:16]
