"""`reconlab plots-template`: an offline HTML template for `dvc plots show` / `dvc plots diff`.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN, so with no network the
plots stay empty (``vegaEmbed is not defined``). This writes a template with the three
libraries inlined — from the npm packages that ship them (``npm pack``, the versions DVC's own
page uses) — and points the clone's ``.dvc/config.local`` at it
(``plots.html_template``), so plain ``dvc plots show`` and ``dvc plots diff`` work offline.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# The versions DVC's default page loads (dvc_render.vega), so the plot specs behave the same.
PACKAGES = {
    "vega": ("5.20.2", "package/build/vega.min.js"),
    "vega-lite": ("5.2.0", "package/build/vega-lite.min.js"),
    "vega-embed": ("6.18.2", "package/build/vega-embed.min.js"),
}
DEFAULT_OUT = Path(".dvc/tmp/plots/offline.html")  # git-ignored (.dvc/.gitignore: /tmp)
PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{refresh_tag}
<title>DVC plots (offline: Vega inlined by reconlab plots-template)</title>
%s
<style>table { border-spacing: 15px; } body { font-family: system-ui, sans-serif; }</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def fetch_libraries(workdir: Path) -> dict[str, str]:
    """``{package: minified JS}``, unpacked from ``npm pack`` tarballs (npm registry).

    Raises:
        RuntimeError: npm is missing or cannot fetch a package.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("plots-template: npm not found (Debian: apt-get install -y npm)")
    specs = [f"{name}@{version}" for name, (version, _) in PACKAGES.items()]
    proc = subprocess.run([npm, "pack", *specs, "--silent"], cwd=workdir, capture_output=True,
                          text=True)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"plots-template: npm pack {' '.join(specs)} failed: "
                           f"{proc.stderr.strip()[-300:]}")  # fmt: skip
    libraries = {}
    for name, (version, member) in PACKAGES.items():
        with tarfile.open(workdir / f"{name}-{version}.tgz") as tar:
            libraries[name] = tar.extractfile(member).read().decode("utf-8")
    return libraries


def template_html(libraries: dict[str, str]) -> str:
    """The page with the libraries inlined (``</script`` inside them escaped)."""
    scripts = []
    for name, js in libraries.items():
        safe = js.replace("</script", "<\\/script")
        scripts.append(f"<script>/* {name} {PACKAGES[name][0]} */\n{safe}\n</script>")
    scripts = "\n".join(scripts)
    return PAGE % scripts


def write_template(
    out: Path = DEFAULT_OUT, configure: bool = True, project: Path = Path(".")
) -> Path:
    """Write the template to ``out`` and, with ``configure``, set it as the clone's default."""
    from reconlab.io import write_text

    with tempfile.TemporaryDirectory() as tmp:
        page = template_html(fetch_libraries(Path(tmp)))
    out = Path(project, out)
    write_text(out, page)
    if configure:
        dvc_dir = Path(project, ".dvc").resolve()
        relative = (
            out.resolve().relative_to(dvc_dir)
            if out.resolve().is_relative_to(dvc_dir)
            else out.resolve()
        )
        subprocess.run([sys.executable, "-m", "dvc", "config", "--local", "plots.html_template",
                        str(relative)], cwd=project, check=True, capture_output=True)  # fmt: skip
    return out


def _run(args: argparse.Namespace) -> int:
    out = write_template(args.out, not args.no_config, args.project)
    where = "" if args.no_config else " and set as plots.html_template in .dvc/config.local"
    print(f"plots-template: wrote {out} ({out.stat().st_size / 1e6:.1f} MB){where}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plots-template",
        help="offline template for dvc plots show/diff (Vega inlined from npm packages)",
        description="Writes an HTML template with Vega, Vega-Lite and Vega-Embed inlined (npm "
        "pack, once) and makes it this clone's default, so `dvc plots show` and `dvc plots "
        "diff` render with no network.",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="template file to write")
    p.add_argument(
        "--no-config",
        action="store_true",
        help="only write the file; do not set plots.html_template in .dvc/config.local",
    )
    p.add_argument("--project", type=Path, default=Path("."), help="the DVC project folder")
    p.set_defaults(func=_run)
