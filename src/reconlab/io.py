"""Atomic writes, JSON/CSV helpers and content hashing.

Every file a stage produces goes through these helpers: it is written under a temporary name in
the destination folder and renamed into place, so a killed job never leaves a file that looks
complete, and a failed run never replaces a good earlier result with a partial one.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import numbers
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_if_created_normally(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give results the usual permissions
    (``mode`` minus the umask) so colleagues sharing a machine or a DVC cache can read them."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the same folder, so the final ``os.replace`` is atomic on POSIX.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    _as_if_created_normally(tmp_path, 0o666)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (stable bytes, so DVC and git diffs stay small).

    Raises:
        ValueError: ``obj`` holds NaN or ±inf (JSON has no such numbers and a metric must never
            silently become one), naming the file and the key path, e.g. ``metrics.psnr.mean``.
            Store a documented stand-in instead (see ``reconlab.evaluation.image_metrics``).
    """
    bad = first_non_finite(obj)
    if bad is not None:
        key, value = bad
        raise ValueError(f"{path}: {key or '(top level)'} is {value} (not a finite number)")
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def null_non_finite(obj: Any) -> Any:
    """``obj`` with every NaN/±inf number replaced by None (JSON ``null``), for values that may
    be undefined by design (a std over one image, a retrieval mAP with no positive pair).

    The one non-finite policy of reconlab's JSON: :func:`write_json` refuses NaN/inf, and a
    caller whose value may legitimately be undefined says so by passing it through here.
    Recurses into mappings, lists and tuples (tuples become lists, as in JSON); converts float
    scalars (Python, numpy, 0-d tensors: anything with ``__float__``) to ``float``; leaves
    integers, bools, strings and None unchanged.
    """
    if isinstance(obj, Mapping):
        return {k: null_non_finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [null_non_finite(v) for v in obj]
    if obj is None or isinstance(obj, (str, bytes, numbers.Integral)):
        return obj
    if isinstance(obj, float) or hasattr(obj, "__float__"):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def first_non_finite(obj: Any, key: str = "") -> tuple[str, float] | None:
    """(dotted key path, value) of the first NaN/±inf float in nested dicts/lists, else None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (key, obj)
    if isinstance(obj, Mapping):
        items = ((f"{key}.{k}" if key else str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{key}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for sub, value in items:
        found = first_non_finite(value, sub)
        if found is not None:
            return found
    return None


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError as e:  # flipped bytes: not even text
        raise ValueError(f"{path}: not valid JSON (not UTF-8 at byte {e.start})") from None


def write_csv(
    path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]
) -> None:
    """Write dict rows as UTF-8 CSV with a fixed header (header only when ``rows`` is empty).

    Raises:
        ValueError: a value that UTF-8 cannot hold (a file name with undecodable bytes: pass
            it through :func:`name_text` first), naming the file, the row and the column.
    """
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(fieldnames))
        writer.writeheader()
        for i, row in enumerate(rows):
            try:
                writer.writerow(row)
            except UnicodeEncodeError:
                bad = next(k for k, v in row.items() if not _utf8_ok(v))
                raise ValueError(
                    f"{path}: row {i + 1}, column {bad!r}: {row[bad]!r} is not valid UTF-8"
                ) from None


def _utf8_ok(value: Any) -> bool:
    try:
        str(value).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def name_text(name: str) -> str:
    """A file name (``str`` from the OS, maybe with surrogate escapes) as lossless UTF-8 text.

    POSIX names are bytes; bytes that are not UTF-8 (a Latin-1 ``caf\\xe9.png`` from an old zip)
    reach Python as lone surrogates, which no UTF-8 file can hold. Here backslashes are doubled
    and each undecodable byte becomes ``\\xNN``, so every name round-trips through
    :func:`text_name` and valid UTF-8 names without backslashes are unchanged.
    """
    raw = os.fsencode(name).replace(b"\\", b"\\\\")
    return raw.decode("utf-8", errors="backslashreplace")


def text_name(text: str) -> str:
    """The inverse of :func:`name_text`: the OS file name (``str``, surrogate-escaped)."""
    out, data, i = bytearray(), text.encode("utf-8"), 0
    while i < len(data):
        if data[i : i + 2] == b"\\\\":
            out += b"\\"
            i += 2
        elif data[i : i + 2] == b"\\x" and i + 4 <= len(data):
            out.append(int(data[i + 2 : i + 4], 16))
            i += 4
        else:
            out.append(data[i])
            i += 1
    return os.fsdecode(bytes(out))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; swap it into place when the block succeeds.

    A previous ``path`` survives until the new one is complete, then is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    _as_if_created_normally(tmp, 0o777)
    try:
        yield tmp
        swap_dir(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def swap_dir(finished: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move the folder ``finished`` onto ``path``; an old ``path`` survives until the swap."""
    finished, path = Path(finished), Path(path)
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(path, old)
        os.replace(finished, path)
        shutil.rmtree(old)
    else:
        os.replace(finished, path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def replace_together(moves: Sequence[tuple[str | os.PathLike, str | os.PathLike]]) -> None:
    """Move finished files/folders onto their destinations: all of them, or none.

    The *last* destination is the stage's commit marker (e.g. the manifest that lists the
    others). It is moved aside first and put in place last, so a process killed half-way
    leaves it missing — Snakemake then sees the stage as incomplete and reruns it — and never
    a new folder beside an old manifest. On an exception every destination gets its old
    content back and the exception propagates. Sources and destinations share one file system.
    """
    pairs = [(Path(a), Path(b)) for a, b in moves]
    marker = pairs[-1][1]
    aside: list[tuple[Path, Path]] = []  # (destination, its old content moved here)
    placed: list[Path] = []
    try:
        for dest in [marker, *(d for _, d in pairs[:-1])]:
            if dest.exists() or dest.is_symlink():
                old = dest.with_name(f".{dest.name}.old")
                _remove(old)
                os.replace(dest, old)
                aside.append((dest, old))
        for finished, dest in pairs:
            os.replace(finished, dest)
            placed.append(dest)
    except BaseException:
        for dest in placed:
            _remove(dest)
        for dest, old in reversed(aside):
            os.replace(old, dest)
        raise
    for _, old in aside:
        _remove(old)


def _remove_dead_staging(root: Path) -> None:
    """Remove staging folders left in ``root`` by killed processes (their pid is in the name)."""
    for stale in root.glob(".staging.*.tmp"):
        try:
            pid = int(stale.name.split(".")[2])
            os.kill(pid, 0)  # raises when no such process: the folder is a killed run's
        except (ValueError, IndexError, ProcessLookupError):
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:  # a live process of another user
            continue


@contextlib.contextmanager
def staged_outputs(root: str | os.PathLike, names: Sequence[str]) -> Iterator[Path]:
    """Yield an empty staging folder inside ``root``; build ``names`` there (relative paths).

    When the block succeeds, ``root/name`` for every name is replaced together by
    :func:`replace_together` (the last name is the commit marker); when it fails, or is
    interrupted, nothing under ``root`` has changed. The staging folder is always removed.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _remove_dead_staging(root)
    stage = Path(tempfile.mkdtemp(prefix=f".staging.{os.getpid()}.", suffix=".tmp", dir=root))
    _as_if_created_normally(stage, 0o777)
    try:
        try:
            yield stage
        except OSError as e:  # a full disk inside a library's write names no file: name the folder
            if e.filename is None and e.errno is not None:
                raise OSError(e.errno, e.strerror or str(e), str(root)) from e
            raise
        missing = [n for n in names if not (stage / n).exists()]
        if missing:
            raise RuntimeError(f"{root}: staged outputs {missing} were not written")
        replace_together([(stage / n, root / n) for n in names])
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def tensors_digest(tensors: Mapping[str, Any]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes (sorted by name)."""
    import torch

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_safetensors(
    path: str | os.PathLike, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``tensors`` atomically as safetensors, with their :func:`tensors_digest` stored in the
    header metadata (``sha256``), so :func:`load_safetensors` can tell a flipped bit.

    The header is re-serialised with sorted keys: safetensors writes metadata in hash-map order,
    which varies between processes, and equal models must be equal files (DVC, determinism).
    """
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    raw = save(state, metadata={**(metadata or {}), "sha256": tensors_digest(state)})
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    write_bytes(path, struct.pack("<Q", len(text)) + text + raw[8 + n :])


def load_safetensors(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors, header metadata) of a safetensors file, verified.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file, when the header cannot be parsed (truncation, not a
            safetensors file) or the tensors do not match the ``sha256`` their writer stored.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    except SafetensorError as e:
        raise ValueError(f"{path}: unreadable safetensors file ({e})") from None
    if "sha256" in meta and tensors_digest(tensors) != meta["sha256"]:
        raise ValueError(f"{path}: corrupt (tensors do not match the sha256 in its header)")
    return tensors, meta
