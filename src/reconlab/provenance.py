"""What produced a result: code hashes derived from the import graph, and the ``run`` block.

Code by content (ARCHITECTURE.md, decision 2). A rule's ``params:`` carries
:func:`command_code` of the ``reconlab <command>`` it runs: a sha256 over every ``reconlab``
module that command can import, found by reading the sources with :mod:`ast` (no module is
imported, so no torch at DAG-build time). Editing any module in that closure reruns the rule and
what depends on it; nothing is listed by hand, so nothing can drift. Resume fingerprints of
long training jobs use the same hash (:func:`module_code`).

The closure of a command is

* its handler in the stage's ``cli.py`` (found from ``register()``: ``add_parser("name")``
  followed by ``set_defaults(func=handler)``), the module-level imports of that ``cli.py`` and the
  imports inside the handler and the same-module functions it calls — not those of the sibling
  commands registered next to it;
* then, for every ``reconlab`` module reached, all of its imports (module level and inside
  functions), their parent packages' ``__init__.py``, recursively; a module that imports by a
  computed name (``importlib.import_module(f"...")``) pulls in every module of the subpackages it
  imports (e.g. the report's discovered sections).

Parsing is cached per file by (size, mtime, ctime), in memory and optionally on disk
(:func:`use_cache_file`), so a DAG build reads only the sources that changed.
"""

from __future__ import annotations

import ast
import atexit
import dataclasses
import functools
import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parent
PACKAGE = PACKAGE_ROOT.name  # "reconlab"
CLI_MODULE = f"{PACKAGE}.cli"


@dataclasses.dataclass(frozen=True)
class _Source:
    """One parsed module: its content hash and what it imports (dotted names)."""

    sha256: str
    imports: tuple[str, ...]  # every import anywhere in the file
    top_imports: tuple[str, ...]  # module-level imports only
    function_imports: Mapping[str, tuple[str, ...]]  # top-level function -> imports in its body
    function_calls: Mapping[str, tuple[str, ...]]  # top-level function -> names it calls
    dynamic: bool  # importlib.import_module / __import__ with a computed name
    commands: Mapping[str, str]  # `reconlab <command>` -> handler function (cli modules)


def module_file(name: str, root: Path = PACKAGE_ROOT) -> Path | None:
    """``reconlab.a.b`` -> ``<root>/a/b.py`` or ``<root>/a/b/__init__.py``; None if not ours."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    if base.with_suffix(".py").is_file() and len(parts) > 1:
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom | ast.Import, module: str, is_package: bool) -> list[str]:
    """Dotted names an import statement may load: ``from a import b`` gives ``a`` and ``a.b``."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    return [base] + [f"{base}.{a.name}" for a in node.names if a.name != "*"]


def _is_dynamic_import(node: ast.Call) -> bool:
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    if name not in ("import_module", "__import__"):
        return False
    return not (node.args and isinstance(node.args[0], ast.Constant))


def _commands(tree: ast.Module) -> dict[str, str]:
    """``add_parser("name", ...)`` followed by ``set_defaults(func=handler)`` in ``register``."""
    commands: dict[str, str] = {}
    for fn in tree.body:
        if not (isinstance(fn, ast.FunctionDef) and fn.name == "register"):
            continue
        current = None
        for node in ast.walk(fn):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr == "add_parser" and node.args:
                arg = node.args[0]
                current = arg.value if isinstance(arg, ast.Constant) else None
            elif node.func.attr == "set_defaults" and current:
                for kw in node.keywords:
                    if kw.arg == "func" and isinstance(kw.value, ast.Name):
                        commands[current] = kw.value.id
    return commands


@functools.cache
def _parse(path: Path, root: Path, size: int, mtime_ns: int, ctime_ns: int) -> _Source:
    data = path.read_bytes()
    tree = ast.parse(data, filename=str(path))
    module = _module_name(path, root)
    is_package = path.name == "__init__.py"

    def imports_in(node: ast.AST) -> tuple[str, ...]:
        found: list[str] = []
        for n in ast.walk(node):
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                found += _resolve(n, module, is_package)
            elif (
                isinstance(n, ast.Call)
                and n.args
                and isinstance(n.args[0], ast.Constant)
                and isinstance(n.args[0].value, str)
                and isinstance(n.func, (ast.Attribute, ast.Name))
                and getattr(n.func, "attr", getattr(n.func, "id", "")) == "import_module"
            ):
                found.append(n.args[0].value)
        return tuple(dict.fromkeys(found))

    top = tuple(
        name
        for n in tree.body
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for name in _resolve(n, module, is_package)
    )
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    calls = {
        f.name: tuple(
            {
                n.func.id
                for n in ast.walk(f)
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            }
        )
        for f in functions
    }
    return _Source(
        sha256=hashlib.sha256(data).hexdigest(),
        imports=imports_in(tree),
        top_imports=top,
        function_imports={f.name: imports_in(f) for f in functions},
        function_calls=calls,
        dynamic=any(isinstance(n, ast.Call) and _is_dynamic_import(n) for n in ast.walk(tree)),
        commands=_commands(tree),
    )


# Parsed sources kept between processes (see use_cache_file): {path: [stat key, _Source fields]}.
_disk: dict[str, list] = {}
_disk_path: Path | None = None
_disk_dirty = False


def use_cache_file(path: str | Path) -> None:
    """Keep parsed sources in ``path`` (JSON) across processes, keyed by size, mtime and ctime.

    The Snakefile calls this with a file under ``.snakemake/`` so a DAG build parses only the
    sources that changed since the last one. ctime is part of the key: a file edited and given
    back its old mtime is still re-read. An unreadable cache file is ignored (rebuilt).
    """
    global _disk, _disk_path
    _disk_path = Path(path)
    try:
        _disk = json.loads(_disk_path.read_text())
    except (OSError, ValueError):
        _disk = {}
    atexit.register(_save_cache)


def _save_cache() -> None:
    if not (_disk_dirty and _disk_path):
        return
    try:
        _disk_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _disk_path.with_name(f".{_disk_path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(_disk))
        os.replace(tmp, _disk_path)
    except OSError:
        pass  # a cache: failing to keep it only costs time


def _source(path: Path, root: Path) -> _Source:
    global _disk_dirty
    st = path.stat()
    key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    cached = _disk.get(str(path))
    if cached and cached[0] == key:
        f = cached[1]
        return _Source(
            f["sha256"], tuple(f["imports"]), tuple(f["top_imports"]),
            {k: tuple(v) for k, v in f["function_imports"].items()},
            {k: tuple(v) for k, v in f["function_calls"].items()},
            f["dynamic"], f["commands"],
        )  # fmt: skip
    src = _parse(path, root, *key)
    if _disk_path is not None:
        _disk[str(path)] = [key, dataclasses.asdict(src)]
        _disk_dirty = True
    return src


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _closure(start: Iterable[str], root: Path) -> dict[str, Path]:
    """Every ``reconlab`` module reachable from ``start`` (dotted names) -> its file."""
    seen: dict[str, Path] = {}
    todo = [p for name in start for p in _with_parents(name)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name, root)
        if path is None:
            continue
        seen[name] = path
        src = _source(path, root)
        todo += [p for imp in src.imports for p in _with_parents(imp)]
        if src.dynamic:
            # Imports by computed name: take every module of the subpackages it imports.
            for imp in src.imports:
                sub = module_file(imp, root)
                if sub is not None and sub.name == "__init__.py" and imp != PACKAGE:
                    todo += [_module_name(p, root) for p in _package_files(sub.parent)]
    return seen


def _package_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _digest(files: Mapping[str, Path], root: Path) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{_source(files[name], root).sha256}\0".encode())
    return h.hexdigest()[:16]


def _command_modules(root: Path) -> list[str]:
    """The stage CLI modules listed in ``COMMAND_MODULES`` of ``reconlab/cli.py`` (read, not run)."""
    tree = ast.parse(module_file(CLI_MODULE, root).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "COMMAND_MODULES" for t in node.targets
        ):
            return [ast.literal_eval(e) for e in node.value.elts]
    raise ValueError(f"{module_file(CLI_MODULE, root)}: no COMMAND_MODULES list")


def command_modules(command: str, root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    """The ``reconlab`` modules ``reconlab <command>`` can import: dotted name -> file.

    Raises:
        ValueError: no module in ``COMMAND_MODULES`` registers ``command``.
    """
    for module in _command_modules(root):
        path = module_file(module, root)
        src = _source(path, root)
        if command not in src.commands:
            continue
        # The handler and the same-module helpers it calls (transitively).
        todo, funcs = [src.commands[command]], set()
        while todo:
            f = todo.pop()
            if f in funcs or f not in src.function_imports:
                continue
            funcs.add(f)
            todo += src.function_calls[f]
        start = [CLI_MODULE, *src.top_imports, *(i for f in funcs for i in src.function_imports[f])]
        closure = _closure(start, root)
        closure[module] = path  # the handler's own file, but not its siblings' imports
        return closure
    raise ValueError(f"provenance: no module in COMMAND_MODULES registers `reconlab {command}`")


def command_code(command: str, root: Path = PACKAGE_ROOT) -> str:
    """``"<command>:<16 hex>"``: the content hash of everything ``reconlab <command>`` runs.

    What a rule passes as ``params: code=...``; any edit in the command's import closure changes
    it, so Snakemake's params trigger reruns that rule and its dependents.
    """
    return f"{command}:{_digest(command_modules(command, root), root)}"


def module_code(*modules: str, root: Path = PACKAGE_ROOT) -> str:
    """16 hex digits over the import closure of the given dotted module names.

    For resume fingerprints: a checkpoint written by other code is not resumed.

    Raises:
        ValueError: a name is not a ``reconlab`` module.
    """
    for m in modules:
        if module_file(m, root) is None:
            raise ValueError(f"provenance: {m} is not a module under {root}")
    return _digest(_closure(modules, root), root)


# --- the run block: which configuration, overlays and commit produced a metrics file ---------


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _git(*args: str, cwd: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(cwd: str | Path = ".") -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository holding ``cwd``.

    ``dirty`` counts tracked files only (outputs are git-ignored); None outside a repository.
    """
    cwd = Path(cwd)
    commit = _git("rev-parse", "HEAD", cwd=cwd)
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return {"commit": commit, "dirty": bool(status)}


def run_block(
    config_name: str,
    overlays: Sequence[str | Path] = (),
    cwd: str | Path = ".",
) -> dict:
    """The ``run`` block every metrics file carries (ARCHITECTURE.md, decision 7).

    Args:
        config_name: the configuration's name, e.g. ``"default"`` (no overlay),
            ``"offline"``, ``"offline+smoke"``.
        overlays: the ``--configfile`` files in order, as given (relative to ``cwd``).
        cwd: the project folder (the git repository).

    Returns:
        ``{"config": name, "overlays": [{"path", "sha256"}...], "git_commit", "git_dirty"}``;
        no wall-clock values, so two runs of one commit give the same block.

    Raises:
        FileNotFoundError: an overlay does not exist.
    """
    cwd = Path(cwd)
    files = []
    for o in overlays:
        p = Path(o) if Path(o).is_absolute() else cwd / o
        if not p.is_file():
            raise FileNotFoundError(f"run block: overlay {o} does not exist")
        files.append({"path": str(o), "sha256": file_sha256(p)})
    git = git_state(cwd)
    return {
        "config": config_name,
        "overlays": files,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
    }


def run_block_from_env(cwd: str | Path = ".") -> dict:
    """:func:`run_block` for the configuration named in ``RECONLAB_RUN`` (set by the workflow).

    ``RECONLAB_RUN`` holds ``{"config": name, "overlays": [paths]}`` as JSON; when it is unset
    (a command run by hand) the configuration is ``"manual"`` with no overlays.
    """
    raw = os.environ.get("RECONLAB_RUN")
    spec = json.loads(raw) if raw else {"config": "manual", "overlays": []}
    return run_block(spec["config"], spec["overlays"], cwd)


# --- configurations: a run's overlays define it; each has its own metrics folder ------------

PROJECT_ROOT = PACKAGE_ROOT.parents[1]
CONFIGURATIONS_FILE = Path("config/configurations.yaml")
# The configuration whose metrics are committed in metrics/ (the base of `dvc metrics diff`),
# unless config/configurations.yaml names another `baseline:`.
BASELINE = "offline"


def _configurations_file(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    table = data.get("configurations", {}) if isinstance(data, dict) else None
    if not isinstance(table, dict) or not all(
        isinstance(v, list) and all(isinstance(p, str) for p in v) for v in table.values()
    ):
        raise ValueError(f"{path}: expected `configurations: {{name: [overlay.yaml, ...]}}`")
    return data


def named_configurations(path: str | Path = CONFIGURATIONS_FILE) -> dict[str, list[str]]:
    """``config/configurations.yaml``: configuration name -> its overlay files, in order.

    Raises:
        ValueError: ``configurations`` is not a mapping of names to lists of paths.
    """
    return dict(_configurations_file(path).get("configurations", {}))


def baseline_name(path: str | Path = CONFIGURATIONS_FILE) -> str:
    """The configuration whose metrics are committed in ``metrics/`` (``baseline:``, default
    :data:`BASELINE`)."""
    return str(_configurations_file(path).get("baseline", BASELINE))


def _relative(p: str | Path, cwd: Path) -> str:
    p = Path(p)
    if p.is_absolute():
        try:
            return p.relative_to(cwd.resolve()).as_posix()
        except ValueError:
            return str(p)
    return p.as_posix()


def resolve_configuration(
    config_name: str | None,
    overlays: Sequence[str | Path] = (),
    cwd: str | Path = ".",
) -> tuple[str, list[str]]:
    """The configuration a run belongs to: ``(name, overlay files in order)``.

    ``config_name`` (``--config-name smoke``; ``--config config_name=smoke`` for Snakemake)
    stands for the overlays listed under it in ``config/configurations.yaml``; further overlays
    are merged after those and extend the name (``smoke+mine``). Without a name, overlays that
    match a named entry take its name; others are named by their file stems joined with ``+``;
    no overlay at all is ``"default"`` (params.yaml alone).

    Raises:
        ValueError: ``config_name`` is not in ``config/configurations.yaml``.
    """
    cwd = Path(cwd)
    table = named_configurations(cwd / CONFIGURATIONS_FILE)
    given = [_relative(p, cwd) for p in overlays]
    if config_name is not None:
        if config_name not in table:
            raise ValueError(
                f"config_name: {config_name!r} is not in {CONFIGURATIONS_FILE} "
                f"(one of {sorted(table)})"
            )
        extra = [Path(p).stem for p in given]
        return "+".join([config_name, *extra]), [*table[config_name], *given]
    for name, files in table.items():
        if [Path(f).as_posix() for f in files] == given:
            return name, given
    return ("+".join(Path(p).stem for p in given) or "default"), given


def metrics_dir(config_name: str) -> str:
    """Where Snakemake writes a configuration's metrics (DVC-tracked, never git-tracked)."""
    return f"results/metrics/{config_name}"


def flat_metrics(data: Any) -> Any:
    """``data`` with every ``.`` in a key replaced by ``_`` (``dvc metrics diff`` joins with dots)."""
    if isinstance(data, dict):
        return {str(k).replace(".", "_"): flat_metrics(v) for k, v in data.items()}
    if isinstance(data, list):
        return [flat_metrics(v) for v in data]
    return data


def stamp_metrics(path: str | Path, run: Mapping) -> dict:
    """Rewrite a metrics JSON with dot-free keys and the ``run`` block; returns the new content."""
    from reconlab.io import read_json, write_json

    data = flat_metrics(read_json(path))
    data["run"] = dict(run)
    write_json(path, data)
    return data


def publish_metrics(config_name: str, cwd: str | Path = ".") -> list[str]:
    """Copy the baseline configuration's metrics into ``metrics/`` (git-tracked) when changed.

    Only the baseline's (:func:`baseline_name`) metrics are published; any other
    configuration's stay in :func:`metrics_dir`. Returns the files written (empty when nothing
    changed).
    """
    cwd = Path(cwd)
    if config_name != baseline_name(cwd / CONFIGURATIONS_FILE):
        return []
    written = []
    for src in sorted((cwd / metrics_dir(config_name)).glob("*.json")):
        dest = cwd / "metrics" / src.name
        data = src.read_bytes()
        if dest.exists() and dest.read_bytes() == data:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        written.append(str(dest.relative_to(cwd)))
    return written


# --- where and how a study's numbers were computed (decision 9) ------------------------------

COMPUTE_KEYS = ("device", "precision", "cpu_capability", "torch")


def summarize_compute(records: Iterable[Mapping]) -> dict:
    """One ``compute`` block for a metrics file from its units' result JSONs.

    Each record is a result JSON holding :func:`reconlab.runtime.compute_record`'s keys (a
    backbone's cache index, a decoder's metrics, a tokenizer evaluation, a sparse cell). A key on
    which the units agree keeps its value; one on which they differ becomes ``"mixed: a, b"``, so
    ``dvc metrics diff`` shows a change of precision or machine class beside the numbers it
    moved. Records without the keys (results from before they were recorded) count as
    ``"unknown"``. Torch-free: summaries run without importing torch.
    """
    block = {}
    records = list(records)
    for key in COMPUTE_KEYS:
        values = sorted({str(r.get(key, "unknown")) for r in records})
        block[key] = values[0] if len(values) == 1 else "mixed: " + ", ".join(values)
    return block
