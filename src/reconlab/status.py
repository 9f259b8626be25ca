"""`reconlab status`: what Snakemake would rerun and why, in words, next to `dvc status`.

Runs ``snakemake --dry-run`` (same ``--configfile`` overlays as a real run) and turns each job's
``reason:`` into one line a user reads:

* changed params: each changed key with its old and new value (``decoder.lr 0.001 -> 0.003``),
  taken from Snakemake's own "before ... now ..." record of the rule's params;
* changed code: the files of the rule's ``reconlab`` command edited since its output was made
  (:func:`reconlab.provenance.command_modules`; a hash param ``<command>:<hex>`` changed);
* missing outputs, changed or rebuilt inputs, a changed rule.

Then ``dvc status`` (the ``reproduce`` stage) as DVC sees it.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOB_START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")
CODE_PARAM = re.compile(r"^([a-z][a-z0-9-]*):([0-9a-f]{16})$")


@dataclass
class Job:
    rule: str
    wildcards: str = ""
    output: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def name(self) -> str:
        return f"{self.rule} ({self.wildcards})" if self.wildcards else self.rule


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of ``snakemake --dry-run`` output (``rule all`` excluded), in printed order."""
    jobs: list[Job] = []
    current: Job | None = None
    for line in text.splitlines():
        m = JOB_START.match(line.strip())
        if m and not line.startswith(" "):
            current = Job(m.group(1))
            if current.rule != "all":
                jobs.append(current)
            continue
        if current is None or not line.startswith("    "):
            if line and not line.startswith(" "):
                current = None
            continue
        key, _, value = line.strip().partition(": ")
        if key == "output":
            current.output = [v.strip() for v in value.split(", ")]
        elif key == "wildcards":
            current.wildcards = value.strip()
        elif key == "reason":
            current.reason = value.strip()
    return jobs


def _literals(text: str) -> list[Any]:
    """``'a', 'b'`` (Snakemake's repr of param values) -> ['a', 'b']; [] when unparsable."""
    try:
        value = ast.literal_eval(f"[{text.strip().rstrip(';')}]")
    except (ValueError, SyntaxError):
        return []
    return list(value)


def _json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return None
    return None


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": value}`` (lists are values)."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def section_of(values: dict, config: dict | None) -> str:
    """The params section ``values`` was cut from (the one holding all its keys), or ""."""
    if not config or set(values) <= set(config):
        return ""
    best, score = "", -1
    for name, section in config.items():
        if isinstance(section, dict) and set(values) <= set(section):
            same = sum(section[k] == v for k, v in values.items())
            if same > score:
                best, score = name, same
    return best


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def param_changes(before: list, now: list, config: dict | None) -> tuple[list[str], list[str]]:
    """(changed keys as "key old -> new", commands whose code hash changed)."""
    changes, commands = [], []
    for old in before:
        m = CODE_PARAM.match(str(old))
        if m:
            commands.append(m.group(1))
    old_json = [j for j in map(_json, before) if isinstance(j, dict)]
    new_json = [j for j in map(_json, now) if isinstance(j, dict)]
    for new in new_json:
        # pair each new JSON param with the old one sharing most keys
        old = max(old_json, key=lambda o, n=new: len(set(o) & set(n)), default=None)
        if old is None:
            continue
        prefix = section_of(new, config)
        a, b = flatten(old, prefix), flatten(new, prefix)
        for key in sorted(set(a) | set(b)):
            if a.get(key, "(unset)") != b.get(key, "(unset)"):
                changes.append(
                    f"{key} {_show(a.get(key, '(unset)'))} -> {_show(b.get(key, '(unset)'))}"
                )
    if not changes and not commands and before != now:
        changes.append(f"{_show(before)[:80]} -> {_show(now)[:80]}")
    return list(dict.fromkeys(changes)), commands


def changed_code(commands: list[str], outputs: list[str], project: Path) -> list[str]:
    """Files of the commands' import closures edited after the job's oldest output was written."""
    stamps = [Path(project, o).stat().st_mtime for o in outputs if Path(project, o).exists()]
    since = min(stamps) if stamps else 0.0
    files: dict[str, Path] = {}
    try:
        from reconlab.provenance import command_modules

        for c in commands:
            files.update({str(p): p for p in command_modules(c).values()})
    except (ImportError, ValueError):
        src = Path(project) / "src" / "reconlab"
        files = {str(p): p for p in src.rglob("*.py")}
    root = Path(__file__).resolve().parent.parent
    edited = sorted(
        str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
        for p in files.values()
        if p.exists() and p.stat().st_mtime > since
    )
    return edited


def explain(job: Job, project: Path, config: dict | None) -> list[str]:
    """One reason in words per fact Snakemake gave for rerunning ``job``."""
    words = []
    for part in re.split(r";\s*(?=[A-Z])", job.reason):
        part = part.strip()
        if part.startswith("Params have changed"):
            m = re.search(r"before: (.*) now: (.*)$", part)
            before, now = (_literals(m.group(1)), _literals(m.group(2))) if m else ([], [])
            changes, commands = param_changes(before, now, config)
            if changes:
                words.append("params: " + "; ".join(changes))
            if commands:
                files = changed_code(commands, job.output, project)
                words.append(
                    "code of `reconlab "
                    + ", ".join(commands)
                    + "` changed: "
                    + (", ".join(files) if files else "(edited files not found by mtime)")
                )
            if not m:
                words.append("params changed")
        elif part.startswith("Missing output files"):
            words.append("missing output: " + part.split(": ", 1)[-1])
        elif part.startswith("Input files updated by another job"):
            words.append("input rebuilt upstream: " + part.split(": ", 1)[-1])
        elif part.startswith("Updated input files"):
            words.append("input changed: " + part.split(": ", 1)[-1])
        elif part.startswith("Code has changed"):
            words.append(f"the rule `{job.rule}` itself (its shell command or code) changed")
        elif part.startswith("Set of input files has changed"):
            words.append("the set of input files changed (an input was added or removed)")
        elif part:
            words.append(part)
    return words or ["(no reason given)"]


def snakemake_dry_run(project: Path, configfiles: list[str], targets: list[str]) -> str:
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    cmd = [exe, "--dry-run", "--cores", "1", *targets]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError("snakemake --dry-run failed: " + " | ".join(tail))
    return proc.stdout + proc.stderr


def dvc_status(project: Path) -> str:
    exe = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    if not (Path(project) / ".dvc").is_dir():
        return "not a DVC project (no .dvc/ folder)"
    try:
        proc = subprocess.run([exe, "status"], cwd=project, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"dvc status did not run ({e})"
    out = (proc.stdout.strip() or proc.stderr.strip() or "(no output)").replace("\t", "    ")
    if not (Path(project) / "dvc.lock").exists():  # before `reconlab record`: all of it is new
        out = f"{NO_LOCK}\n{out}"
    return out


NO_LOCK = (
    "(no dvc.lock yet: no run has been recorded for DVC, so it lists every dependency and "
    "output below as new or modified; `reconlab record` records a finished run)"
)


def table(rows: list[tuple[str, str]], headers: tuple[str, str]) -> str:
    """Two left-aligned columns; a long reason wraps under its own column."""
    import textwrap

    width = max(len(headers[0]), *(len(r[0]) for r in rows)) if rows else len(headers[0])
    lines = [f"{headers[0]:<{width}}  {headers[1]}", f"{'-' * width}  {'-' * len(headers[1])}"]
    for job, why in rows:
        wrapped = textwrap.wrap(why, 100, break_on_hyphens=False) or [""]
        lines.append(f"{job:<{width}}  {wrapped[0]}")
        lines += [f"{'':<{width}}    {w}" for w in wrapped[1:]]
    return "\n".join(lines)


def status(project: Path, configfiles: list[str], targets: list[str], with_dvc: bool) -> str:
    """The whole report: Snakemake's plan in words, then ``dvc status``."""
    config = None
    try:
        from reconlab.config import load_params

        config = load_params(Path(project) / "params.yaml",
                             [str(Path(project) / c) for c in configfiles])  # fmt: skip
    except Exception:  # noqa: BLE001 - the dry run reports bad params itself
        config = None
    jobs = parse_dry_run(snakemake_dry_run(project, configfiles, targets))
    # one row per reason; a job with several reasons is named once, on its first row
    rows = [
        (job.name if i == 0 else "", why)
        for job in jobs
        for i, why in enumerate(explain(job, project, config))
    ]
    out = []
    if rows:
        out.append(f"Snakemake would run {len(jobs)} job(s):")
        out.append(table(rows, ("job", "why")))
    else:
        out.append("Snakemake: nothing to be done (all outputs up to date).")
    if with_dvc:
        out.append("")
        out.append("dvc status:")
        out.append("  " + dvc_status(project).replace("\n", "\n  "))
    return "\n".join(out)


def _run(args: argparse.Namespace) -> int:
    from reconlab.provenance import resolve_configuration

    _, overlays = resolve_configuration(args.config_name, args.configfile, args.project)
    print(status(args.project, overlays, args.target, not args.no_dvc))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from reconlab.cli import add_configuration_args

    p = sub.add_parser(
        "status",
        help="what Snakemake would rerun and why (changed params, code, inputs), and dvc status",
        description="Runs `snakemake --dry-run` and says, per job, why it would run: each "
        "changed params key with old -> new value, the edited code files of its command, missing "
        "or changed inputs. Then `dvc status`.",
    )
    add_configuration_args(p)  # --configfile a b (as snakemake) / --config-name NAME
    p.add_argument(
        "--target", action="append", default=[], help="only this target file or rule (repeatable)"
    )
    p.add_argument(
        "--project", type=Path, default=Path("."), help="project folder (the Snakefile's)"
    )
    p.add_argument("--no-dvc", action="store_true", help="skip `dvc status`")
    p.set_defaults(func=_run)
