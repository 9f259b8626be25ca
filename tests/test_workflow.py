"""Real Snakemake runs on the smoke config: outputs, rerun semantics (decision 2), light DAG."""

from __future__ import annotations

import subprocess
import sys

import yaml
from conftest import SMOKE, planned_jobs, project_env, snakemake


def _edit_yaml(path, update):
    data = yaml.safe_load(path.read_text()) or {}
    update(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_smoke_run_writes_prepared_data_and_report(smoke_project):
    p = smoke_project
    assert (p / "data/prepared/manifest.csv").exists()
    assert (p / "data/prepared/rejected.csv").exists()
    assert (p / "data/prepared/fields/index.json").exists()
    assert (p / "metrics/data.json").exists()
    html = (p / "reports/index.html").read_text()
    assert "<h2>Data</h2>" in html
    assert 'src="data:image/png;base64,' in html  # offline: images are inlined


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


def test_dag_build_imports_no_heavy_library(project):
    code = (
        "import sys, reconlab.config, reconlab.provenance; "
        "print(sorted(m for m in ('torch', 'timm', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=project_env(project), capture_output=True, text=True
    )
    assert out.stdout.strip() == "[]"
