"""External inputs by content: the user's photo folder and weights files as real dependencies.

A path in params (``data.source`` when it is a folder, a backbone's ``weights`` file,
``decoder.lpips_weights``, ...) is turned into a *manifest*: one line per file,
``relative path <TAB> size <TAB> sha256``, written to ``data/inputs/<key>.tsv``. Rules take the
manifest as an input and ``dvc.yaml`` lists ``data/inputs`` as a dependency, so

* an added, removed or content-changed file (also one given back its old modification time)
  changes the manifest, which is rewritten and so becomes newer than the outputs that read it:
  exactly those rules and their dependents rerun;
* an unchanged input leaves the manifest untouched (not even rewritten), so nothing reruns.

Hashing is cheap on repeat: a file is re-hashed only when its (size, mtime, ctime, inode) changed
since the last build (a JSON cache under ``.snakemake/``); ctime moves on every write and
cannot be set back, so restoring an old mtime does not hide an edit. No heavy imports: the
Snakefile calls this at DAG-build time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from reconlab.io import name_text

# String values of path-like keys that name no file.
KEYWORDS = frozenset({"pretrained", "random", "none", "skimage"})
MANIFEST_DIR = Path("data/inputs")
HASH_CACHE = Path(".snakemake/reconlab/input-hashes.json")


def _is_path_key(key: str) -> bool:
    return key in ("source", "weights", "folder") or key.endswith("_weights")


def external_paths(section: Mapping[str, Any], prefix: str) -> dict[str, str]:
    """Path-valued params of one section: dotted key -> path as written in params.

    A key is path-like when it is ``source``, ``weights``, ``folder`` or ends in ``_weights`` and its value
    is a string other than ``pretrained``, ``random``, ``none``, ``skimage``. List items are
    named by their ``id`` when they have one (``features.backbones.dinov2_s14.weights``).
    """
    found: dict[str, str] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                sub = f"{key}.{k}"
                if isinstance(v, str) and _is_path_key(k) and v not in KEYWORDS:
                    found[sub] = v
                else:
                    walk(v, sub)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                name = v.get("id", i) if isinstance(v, Mapping) else i
                walk(v, f"{key}.{name}")

    walk(section, prefix)
    return found


def _walk(root: str) -> Iterator[tuple[str, str, os.stat_result | None]]:
    """(relative path, path, stat) of every file below ``root``; hidden names skipped.

    ``os.scandir`` with plain strings: a no-op over 10,000 files is a stat per file and no more.
    Symlinked folders are not entered (as the image reader, so a symlink cycle ends here); a
    symlink that leads nowhere (dangling, a loop) has stat None.
    """
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as entries:
            for e in entries:
                if e.name.startswith("."):
                    continue
                sub = f"{rel}/{e.name}" if rel else e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append(sub)
                    continue
                try:
                    st = e.stat()
                except OSError:  # dangling symlink or symlink loop: listed, not hashed
                    st = None
                if st is None or not stat.S_ISDIR(st.st_mode):
                    yield sub, e.path, st


class HashCache:
    """sha256 of files, recomputed only when (size, mtime_ns, ctime_ns, inode) changed."""

    def __init__(self, path: Path | None = HASH_CACHE):
        self.path = path
        self.entries: dict[str, list] = {}
        self.dirty = False
        if path is not None:
            try:
                self.entries = json.loads(Path(path).read_text())
            except (OSError, ValueError):
                self.entries = {}

    def sha256(self, path: str, st: os.stat_result) -> str:
        """sha256 of the file at ``path`` (absolute), whose ``os.stat`` is ``st``."""
        key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = self.entries.get(path)
        if hit and hit[0] == key:
            return hit[1]
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        self.entries[path] = [key, h.hexdigest()]
        self.dirty = True
        return h.hexdigest()

    def save(self) -> None:
        if not (self.dirty and self.path):
            return
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(self.entries))
        os.replace(tmp, path)
        self.dirty = False


def manifest_text(path: str | Path, cache: HashCache) -> str:
    """The manifest of a file or folder: ``rel<TAB>size<TAB>sha256`` lines, sorted by path.

    Hidden files and folders (``.name``) are left out, as the image reader skips them.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{path} does not exist")
    lines = [f"# {path}"]
    if root.is_file():
        files = [(root.name, str(root.resolve()), root.stat())]
    else:
        files = sorted(_walk(str(root.resolve())), key=lambda f: f[0])
    for rel, full, st in files:
        name = name_text(rel)  # any name the file system allows, as lossless UTF-8 (io.name_text)
        lines.append(
            f"{name}\t-\tunreadable"
            if st is None
            else f"{name}\t{st.st_size}\t{cache.sha256(full, st)}"
        )
    return "\n".join(lines) + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` atomically unless ``path`` already holds it; True when written."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key) + ".tsv"


def input_manifests(
    config: Mapping[str, Any],
    sections: Mapping[str, Any] | None = None,
    out_dir: str | Path = MANIFEST_DIR,
    cache_path: Path | None = HASH_CACHE,
) -> dict[str, str]:
    """Write the manifest of every path-valued param; dotted key -> manifest path.

    Args:
        config: the validated params (every section).
        sections: which sections to scan (default: all of ``config``).
        out_dir: where manifests go (``data/inputs``, listed in ``dvc.yaml`` deps); manifests
            of keys this configuration does not have are removed from it.
        cache_path: the hash cache, or None for no cache.

    Raises:
        FileNotFoundError: ``"params: <key>: <path> does not exist"``.
    """
    cache = HashCache(cache_path)
    out_dir = Path(out_dir)
    manifests: dict[str, str] = {}
    data = config.get("data")
    if (
        isinstance(data, Mapping)
        and data.get("source") == "skimage"
        and "data" in (sections or config)
    ):
        # The bundled photos: they change only with scikit-image's version (read, not imported).
        target = out_dir / _file_name("data.source")
        write_if_changed(target, f"# skimage\nscikit-image\t{_version('scikit-image')}\n")
        manifests["data.source"] = str(target)
    for name in sections or config:
        if not isinstance(config.get(name), Mapping):
            continue
        for key, path in external_paths(config[name], name).items():
            try:
                text = manifest_text(path, cache)
            except FileNotFoundError:
                raise FileNotFoundError(f"params: {key}: {path} does not exist") from None
            target = out_dir / _file_name(key)
            write_if_changed(target, text)
            manifests[key] = str(target)
    cache.save()
    # Only this configuration's manifests stay: data/inputs is a DVC dependency, and a clone
    # that regenerates it must find exactly what dvc.lock recorded.
    for stale in set(out_dir.glob("*.tsv")) - {Path(m) for m in manifests.values()}:
        stale.unlink()
    return manifests


def inputs_of(
    manifests: Mapping[str, str], prefix: str, exclude: tuple[str, ...] = ()
) -> list[str]:
    """The manifests under one dotted prefix, e.g. ``features.backbones.dinov2_s14``.

    ``exclude`` drops keys directly below ``prefix`` (e.g. the decoder's evaluation-only keys).
    """
    out = []
    for key, path in sorted(manifests.items()):
        if key == prefix or key.startswith(prefix + "."):
            first = key[len(prefix) + 1 :].split(".", 1)[0]
            if first not in exclude:
                out.append(path)
    return out
