"""Real Snakemake runs on the smoke config: outputs, rerun semantics (decision 2), light DAG."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import (
    BIN,
    ROOT,
    SMOKE,
    SMOKE_METRICS,
    metrics_file,
    planned_jobs,
    project_env,
    run,
    snakemake,
)


def _edit_yaml(path, update):
    data = yaml.safe_load(path.read_text()) or {}
    update(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_smoke_run_writes_prepared_data_and_report(smoke_project):
    p = smoke_project
    assert (p / "data/prepared/manifest.csv").exists()
    assert (p / "data/prepared/rejected.csv").exists()
    assert (p / "data/prepared/fields/index.json").exists()
    data = json.loads((p / SMOKE_METRICS / "data.json").read_text())
    assert data["run"]["config"] == "smoke"
    assert [o["path"] for o in data["run"]["overlays"]] == SMOKE[1:]
    html = (p / "reports/index.html").read_text()
    assert "<h2>Data</h2>" in html
    assert 'src="data:image/' in html  # offline: images are inlined (PNG or lossless WebP)


def test_second_run_has_nothing_to_do(smoke_project):
    assert planned_jobs(smoke_project, *SMOKE) == set()
    out = snakemake(smoke_project, *SMOKE)
    assert "Nothing to be done" in out.stdout + out.stderr


def test_rerun_sets_follow_params_and_code(smoke_copy):
    project = smoke_copy
    assert planned_jobs(project, *SMOKE) == set()
    data_stage = {"prepare_images", "make_fields", "summarize_data"}

    # A data value: prepare_images and what depends on it, not make_fields.
    smoke = project / "config" / "smoke.yaml"
    original = smoke.read_text()
    _edit_yaml(smoke, lambda d: d["data"].update(crops_per_image=3))
    jobs = planned_jobs(project, *SMOKE)
    assert {"prepare_images", "summarize_data", "report"} <= jobs
    assert "make_fields" not in jobs
    smoke.write_text(original)

    # Unrelated sections: none of the data stage.
    _edit_yaml(smoke, lambda d: d["report"].update(title="another title"))
    assert planned_jobs(project, *SMOKE) == {"report"}
    _edit_yaml(smoke, lambda d: d["decoder"].update(lr=0.0005))
    jobs = planned_jobs(project, *SMOKE)
    assert "train_decoder" in jobs
    assert not jobs & (data_stage | {"cache_features"})
    smoke.write_text(original)
    assert planned_jobs(project, *SMOKE) == set()

    # The source of make_fields: make_fields reruns, prepare_images does not.
    fields_py = project / "src/reconlab/data/fields.py"
    fields_py.write_text(fields_py.read_text() + "\n# an edit\n")
    jobs = planned_jobs(project, *SMOKE)
    assert "make_fields" in jobs
    assert "prepare_images" not in jobs


def test_schema_error_names_the_key(project):
    (project / "config" / "bad.yaml").write_text("data:\n  on_bad_image: maybe\n")
    proc = snakemake(project, "-n", "--configfile", "config/bad.yaml", check=False)
    assert proc.returncode != 0
    assert "data.on_bad_image: 'maybe' is not allowed; choose one of ['skip', 'fail']" in (
        proc.stdout + proc.stderr
    )


HEAVY = ("torch", "timm", "matplotlib", "torchvision", "torchmetrics")


def test_dag_build_imports_no_heavy_library(project, tmp_path):
    """The real DAG build (every rule file and what it imports) with the heavy libraries made
    unimportable: a sentinel package of each name that raises on import comes first on the path."""
    for name in HEAVY:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"raise ImportError('{name} imported at DAG-build time')\n"
        )
    env = project_env(project)
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    dry = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--cores", "1", *SMOKE],
        cwd=project, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    # the sentinel bites: a module that does need torch fails to import under it
    probe = subprocess.run(
        [sys.executable, "-c", "import reconlab.sparse.train"],
        cwd=project, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert "torch imported at DAG-build time" in probe.stderr


# --- the reproducibility contract (issue 12) ----------------------------------------------

SPARSE_JOBS = {"sparse_cell", "sparse_round", "sparse_baselines", "sparse_overfit", "sparse_final"}


def _append(path, text="\n# an edit\n"):
    original = path.read_text()
    path.write_text(original + text)
    return original


def test_edit_deep_in_an_import_closure_reruns_exactly_its_users(smoke_copy):
    """(o) No list to keep: the code hash is the command's import closure."""
    p = smoke_copy
    src = p / "src/reconlab"
    assert planned_jobs(p, *SMOKE) == set()
    # sparse/cli -> study -> models -> encoding: three imports deep, never named in a rule.
    original = _append(src / "sparse/encoding.py")
    assert planned_jobs(p, *SMOKE) == SPARSE_JOBS | {"aggregate_sparse", "report"}
    (src / "sparse/encoding.py").write_text(original)
    assert planned_jobs(p, *SMOKE) == set()  # content back: code hash back, nothing to do
    # features/images.py is imported inside functions of decoder/data.py and diagnostics/.
    _append(src / "features/images.py")
    assert planned_jobs(p, *SMOKE) == {
        "cache_features",
        "summarize_features",
        "train_decoder",
        "evaluate_decoder",
        "summarize_decoder",
        "dino_diagnostics",
        "compare_backbones",
        "summarize_diagnostics",
        "report",
    }


def test_every_rule_hashes_the_command_its_shell_runs(smoke_project):
    """The code param names the same `reconlab <command>` as the rule's shell (job metadata)."""
    from reconlab.provenance import command_code

    checked = set()
    for f in (smoke_project / ".snakemake/metadata").iterdir():
        record = json.loads(f.read_text())
        command = record["code"].split()[1]  # "reconlab <command> ..."
        expected = command_code(command, smoke_project / "src/reconlab")
        assert repr(expected) in record["params"], (record["rule"], command)
        checked.add(record["rule"])
    assert {"prepare_images", "sparse_cell", "report", "summarize_tokenizer"} <= checked


def _photo(path, value=None, seed=0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (100, 120, 3), dtype=np.uint8) if value is None else None
    if pixels is None:
        pixels = np.full((100, 120, 3), value, dtype=np.uint8)
    Image.fromarray(pixels).save(path)


INPUTS_SNAKEFILE = """configfile: "params.yaml"
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/tokenizer.smk"
rule all:
    input:
        TARGETS["data"],
        rules.jpeg_baseline.output.csv,
"""


@pytest.mark.slow
def test_source_folder_is_a_dependency_by_content(project):
    """(a) Added, removed, changed-with-old-mtime photos rerun exactly the rules reading them."""
    p = project
    photos = p / "photos"
    photos.mkdir()
    for i in range(4):
        _photo(photos / f"p{i}.png", seed=i)
    (p / "photos.yaml").write_text(f"data:\n  source: {photos}\n")
    (p / "Snakefile.inputs").write_text(INPUTS_SNAKEFILE)
    args = ["-s", "Snakefile.inputs", *SMOKE, "photos.yaml"]
    snakemake(p, *args)
    readers = {"prepare_images", "summarize_data", "jpeg_baseline"}  # not make_fields

    _photo(photos / "p4.png", seed=4)  # added
    assert planned_jobs(p, *args) == readers
    (photos / "p4.png").unlink()  # removed again: the manifest is back to what was run
    assert planned_jobs(p, *args) == set()

    (photos / "p3.png").unlink()  # removed
    assert planned_jobs(p, *args) == readers
    _photo(photos / "p3.png", seed=3)
    assert planned_jobs(p, *args) == set()

    # Overwritten by a black image of the same name, its old mtime put back.
    st = (photos / "p1.png").stat()
    _photo(photos / "p1.png", value=0)
    os.utime(photos / "p1.png", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert planned_jobs(p, *args) == readers
    manifest = (p / "data/inputs/data.source.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in manifest[1:]] == [f"p{i}.png" for i in range(4)]

    # A missing folder stops the DAG build with one line naming the key.
    (p / "gone.yaml").write_text("data:\n  source: /no/such/photos\n")
    proc = snakemake(p, "-n", "-s", "Snakefile.inputs", *SMOKE, "gone.yaml", check=False)
    assert proc.returncode != 0
    assert "params: data.source: /no/such/photos does not exist" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_weights_file_is_an_input_by_content(project):
    """A weights path in params: cache_features of that backbone reads its manifest."""
    weights = project / "w.pth"
    weights.write_bytes(b"not really weights")
    backbone = {"id": "local", "model": "vit_small_patch14_dinov2.lvd142m", "weights": str(weights)}
    # The tokenizer's FDD names a backbone by id (dinov2_s14 by default): with a list that lacks
    # it the DAG stops with that key's name, so this overlay turns FDD off.
    overlay = {
        "features": {"backbones": [backbone]},
        "tokenizer": {"eval": {"frechet": {"backbone": None}}},
    }
    (project / "w.yaml").write_text(yaml.safe_dump(overlay))
    # The job's inputs as the dry run lists them (--detailed-summary shows only recorded ones).
    plan = snakemake(project, "-n", "data/features/local", *SMOKE, "w.yaml").stdout
    job = plan[plan.index("rule cache_features:") :]
    inputs = job[job.index("input: ") + 7 :].splitlines()[0].split(", ")
    manifest = "data/inputs/features.backbones.local.weights.tsv"
    assert manifest in inputs
    line = (project / manifest).read_text().splitlines()[1]
    assert line.split("\t") == ["w.pth", "18", hashlib.sha256(b"not really weights").hexdigest()]


@pytest.mark.slow
def test_nothing_git_tracked_is_a_snakemake_output(project):
    """(b) A fresh clone: committed metrics are no outputs, so no target passes for computed."""
    assert sorted(project.glob("metrics/*.json"))  # the committed baseline, as in a clone
    tracked = set(run(["git", "ls-files"], ROOT).stdout.split())
    for args in (SMOKE, ["--configfile", "config/offline.yaml"]):
        proc = snakemake(project, "--summary", *args)
        outputs = {line.split("\t")[0] for line in proc.stdout.splitlines()[1:]}
        assert outputs and not outputs & tracked
        assert not any(o.startswith("metrics/") for o in outputs)
    # The baseline's decoder metrics are planned, not taken from the committed file.
    baseline = ["--configfile", "config/offline.yaml"]
    target = str(metrics_file(project, "decoder", *baseline).relative_to(project))
    assert target == "results/metrics/offline/decoder.json"
    assert {"summarize_decoder", "train_decoder"} <= planned_jobs(project, target, *baseline)


def _keys(obj) -> list[str]:
    """Every key of a nested JSON object."""
    if isinstance(obj, dict):
        return [k for key, value in obj.items() for k in (key, *_keys(value))]
    if isinstance(obj, list):
        return [k for value in obj for k in _keys(value)]
    return []


def test_smoke_run_leaves_committed_metrics_alone(smoke_project):
    """(c) A smoke run writes its own metrics folder; metrics/ (the baseline) is untouched."""
    committed = {f.name: f.read_bytes() for f in (ROOT / "metrics").glob("*.json")}
    assert set(committed) == {
        f"{s}.json" for s in ("data", "features", "decoder", "tokenizer", "diagnostics", "sparse")
    }
    here = smoke_project / "metrics"
    assert {f.name: f.read_bytes() for f in here.glob("*.json")} == committed
    smoke = {f.name for f in (smoke_project / SMOKE_METRICS).glob("*.json")}
    assert smoke == set(committed)
    for name in smoke:
        m = json.loads((smoke_project / SMOKE_METRICS / name).read_text())
        assert m["run"]["config"] == "smoke" and len(m["run"]["overlays"]) == 2
        keys = _keys(m)
        assert [k for k in keys if "." in k] == []  # dotted keys break `dvc metrics diff`
        assert "tokenizer" != name[:-5] or "f4x4-K16" in keys  # the smoke's variant
        # (a dotted variant name, f4-FSQ3.3.3, becomes f4-FSQ3_3_3: test_tokenizer_pipeline.py)
        assert not any("wall" in k or "img_s" in k for k in keys)  # no timings in metrics


def test_every_entry_point_takes_the_same_overlays(smoke_project, tmp_path):
    """(e) `--configfile a b`, a repeated flag, and the name `smoke` mean one configuration."""
    p = smoke_project
    # Snakemake: the named configuration plans nothing after the smoke run with the two files.
    assert planned_jobs(p, "--config", "config_name=smoke") == set()
    # Every stage command: three spellings, identical output.
    spellings = {
        "nargs": ["--configfile", "config/offline.yaml", "config/smoke.yaml"],
        "repeated": ["--configfile", "config/offline.yaml", "--configfile", "config/smoke.yaml"],
        "named": ["--config-name", "smoke"],
    }
    indexes = set()
    for name, spelling in spellings.items():
        out = tmp_path / name
        run([str(BIN / "reconlab"), "make-fields", *spelling, "--out", str(out)], p)
        indexes.add((out / "index.json").read_bytes())
    assert len(indexes) == 1
    # sync and record parse the same arguments (their runs are in test_dvc_roundtrip.py).
    for command in ("sync", "record"):
        help_text = run([str(BIN / "reconlab"), command, "--help"], p).stdout
        assert "--configfile YAML [YAML ...]" in help_text and "--config-name NAME" in help_text
    old_form = [str(BIN / "reconlab"), "sync", "--", "--configfile", "config/smoke.yaml"]
    proc = run(old_form, p, check=False)
    assert proc.returncode == 1 and "overlays go before `--`" in proc.stderr
    bad = run([str(BIN / "reconlab"), "make-fields", "--config-name", "nope"], p, check=False)
    assert bad.returncode == 1
    assert "config_name: 'nope' is not in config/configurations.yaml" in bad.stderr
