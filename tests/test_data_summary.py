"""The data stage's summary in-process: DVC metrics, the two figures and the report section
(the summarize_data rule runs the same code in the smoke pipeline, slowly)."""

from __future__ import annotations

import json
import shutil

from reconlab.config import FieldsConfig
from reconlab.data.fields import make_fields
from reconlab.data.summary import summarize_data
from reconlab.report.context import ReportContext
from reconlab.report.sections import data as report_section


def test_summary_counts_every_split_and_the_report_shows_it(tiny_feature_cache, tmp_path):
    prepared = tmp_path / "prepared"
    shutil.copytree(tiny_feature_cache / "prepared", prepared)
    families = ["sinusoid", "radial"]
    per_family = {"train": 3, "val": 1, "test": 2}
    make_fields(FieldsConfig(families=families, per_family=per_family), prepared / "fields")

    m = summarize_data(prepared, tmp_path / "metrics" / "data.json", tmp_path / "results" / "data")
    assert m["images"]["crops"] == {"train": 2, "val": 1, "test": 1}  # 4 photos, 1 crop each
    assert m["images"]["source"] == "folder" and m["images"]["rejected"] == 0
    assert m["fields"]["count"] == {"train": 6, "val": 2, "test": 4}
    assert set(m["fields"]["test_std_by_family"]) == set(families)
    assert all(v > 0 for v in m["fields"]["test_std_by_family"].values())
    assert json.loads((tmp_path / "metrics" / "data.json").read_text()) == m
    for figure in ("samples.png", "fields.png"):
        assert (tmp_path / "results" / "data" / figure).stat().st_size > 0

    html = report_section.render(ReportContext(tmp_path / "results", tmp_path / "metrics"))
    assert html.count("data:image/") == 2 and "source photos" in html
