"""The report: tables, escaping, provenance, benchmark files from a real Snakemake run, viewer data,
and the smoke run's report as a whole."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from reconlab.report.context import environment
from reconlab.report.provenance import banners, benchmarks, run_block
from reconlab.report.tables import frame_table, records_table
from reconlab.report.viewer import viewer_data

BIN = Path(sys.executable).parent


def test_table_puts_the_headline_first_sorts_and_formats():
    frame = pd.DataFrame(
        {
            "technique": ["adaln", "ema", "fourier"],
            "psnr_std": [0.1, 0.2, float("nan")],
            "gain_db": [0.0063, -0.3036, 1.25],
            "beneficial": [True, False, None],
            "lpips": ["not computed: no pretrained weights", 0.5, 0.25],
        }
    )
    labels = {"technique": "technique", "psnr_std": "seed std", "gain_db": "gain (dB)",
              "beneficial": "beneficial", "lpips": "LPIPS"}  # fmt: skip
    t = frame_table(frame, labels, headline="gain_db", sort_by="gain_db")
    assert t.columns == ["technique", "gain (dB)", "seed std", "beneficial", "LPIPS"]
    assert [r[0].text for r in t.rows] == ["fourier", "adaln", "ema"]  # ranked by gain
    fourier, adaln, ema = t.rows
    assert fourier[1].text == "1.25" and fourier[2].text == "n/a"
    assert adaln[3].text == "yes" and ema[3].text == "no" and fourier[3].text == "n/a"
    assert adaln[4].text == "n/a" and adaln[4].title == "not computed: no pretrained weights"
    assert t.headline == "gain (dB)"


def test_templates_escape_values():
    t = records_table([{"backbone": "<script>alert(1)</script>", "psnr": 12.5}],
                      {"backbone": "backbone", "psnr": "PSNR (dB)"})  # fmt: skip
    html = (
        environment()
        .from_string(
            '{% import "macros.html.j2" as m %}{{ m.table(t) }}{{ m.untrained("random:<b>") }}'
        )
        .render(t=t)
    )
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "random:&lt;b&gt;" in html
    assert '<div class="scroll">' in html  # wide tables scroll inside their box


def test_benchmarks_of_a_real_snakemake_run_are_summed_per_rule(tmp_path):
    (tmp_path / "Snakefile").write_text(
        "rule all:\n    input: expand('out/{x}.txt', x=[1, 2, 3]), 'out/total.txt'\n"
        "rule one:\n    output: 'out/{x}.txt'\n"
        "    benchmark: 'logs/benchmarks/one/{x}.tsv'\n    shell: 'echo {wildcards.x} > {output}'\n"
        "rule total:\n    input: expand('out/{x}.txt', x=[1, 2, 3])\n    output: 'out/total.txt'\n"
        "    benchmark: 'logs/benchmarks/total/total.tsv'\n    shell: 'cat {input} > {output}'\n"
    )
    subprocess.run([str(BIN / "snakemake"), "--cores", "1", "--quiet"], cwd=tmp_path,
                   check=True, capture_output=True)  # fmt: skip
    per_rule = benchmarks(tmp_path / "logs" / "benchmarks")
    assert sorted(per_rule["rule"]) == ["one", "total"]
    one = per_rule.set_index("rule").loc["one"]
    assert one["jobs"] == 3
    seconds = [
        float(pd.read_csv(p, sep="\t")["s"].iloc[-1])
        for p in (tmp_path / "logs/benchmarks/one").glob("*.tsv")
    ]
    assert one["total_s"] == pytest.approx(sum(seconds)) and one["max_s"] == max(seconds)
    assert benchmarks(tmp_path / "nowhere").empty


def test_run_block_from_metrics_else_computed(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "data.json").write_text(json.dumps({"images": {}}))
    fallback = run_block(metrics, tmp_path)  # no run block, not a git checkout
    assert fallback["git_commit"] is None and "report time" in fallback["source"]
    block = {"config": "offline+smoke", "git_commit": "abc123", "git_dirty": True,
             "overlays": [{"path": "config/offline.yaml", "sha256": "0" * 64}]}  # fmt: skip
    (metrics / "sparse.json").write_text(json.dumps({"best": 1.0, "run": block}))
    found = run_block(metrics, tmp_path)
    assert found["config"] == "offline+smoke" and found["source"].endswith("sparse.json")
    kinds = [k for k, _ in banners(found, None, [{"backbone": "b", "untrained": True}])]
    assert kinds == ["smoke", "offline", "untrained", "dirty"]
    clean = {"config": "default", "git_commit": "abc", "git_dirty": False, "overlays": []}
    params = {"features": {"backbones": [{"id": "b", "weights": "pretrained"}]}}
    assert banners(clean, params, [{"backbone": "b", "untrained": False}]) == []


def _png(path: Path, value: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def _decode(uri: str) -> np.ndarray:
    import base64
    import io

    head, _, body = uri.partition(",")
    assert head in ("data:image/png;base64", "data:image/webp;base64"), head
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body))).convert("RGB"))


def test_viewer_data_lines_up_backbones_by_test_image(tmp_path):
    results = tmp_path / "results"
    for b, offset in (("dinov2_s14", 10), ("dinov3_s16", 20)):
        folder = results / "decoder" / b
        for k, name in enumerate(["astronaut_000", "coffee_001"]):
            _png(folder / "samples" / f"{k:03d}_{name}" / "target.png", 100 + k)
            _png(folder / "samples" / f"{k:03d}_{name}" / "pred.png", 100 + k + offset)
        pd.DataFrame({"index": [0, 1], "psnr": [11.5 + offset, 12.5 + offset]}).to_csv(
            folder / "per_sample.csv", index=False
        )
    data = viewer_data(results, ["dinov2_s14", "dinov3_s16"], [], limit=12)
    (group,) = data["groups"]
    assert group["id"] == "decoder"
    assert [im["name"] for im in group["images"]] == ["astronaut_000", "coffee_001"]
    tiles = group["images"][1]["tiles"]
    assert [t["label"] for t in tiles] == ["target", "dinov2_s14", "dinov3_s16"]
    assert [t["psnr"] for t in tiles] == [None, 22.5, 32.5]
    assert tiles[1]["ref"] == tiles[0]["img"]  # |error| against its own target
    pixels = [_decode(data["assets"][t["img"]])[0, 0, 0] for t in tiles]
    assert pixels == [101, 111, 121]  # lossless: the target and each backbone's prediction
    assert viewer_data(tmp_path / "empty", [], [], limit=12) is None


@pytest.mark.slow
def test_smoke_report_has_provenance_timing_viewer_and_every_study(smoke_project):
    html = (smoke_project / "reports" / "index.html").read_text()
    size_mb = len(html.encode()) / 1e6
    for anchor in ("provenance", "timing", "viewer", "data", "features", "decoder",
                   "tokenizer", "sparse", "diagnostics"):  # fmt: skip
        assert f'id="{anchor}"' in html, anchor
    assert "Smoke run" in html and "Offline run" in html and "Untrained backbones" in html
    assert '<details id="params">' in html and "max_thumbnails: 4" in html  # effective params
    # wall time per rule, from the benchmark files of this very run
    timing = html[html.index('id="timing"') : html.index('id="viewer"')]
    for rule in ("train_decoder", "cache_features", "sparse_cell", "train_tokenizer"):
        assert f">{rule}<" in timing, rule
    assert re.search(
        r">train_decoder</td><td class=\"num[^\"]*\">[0-9.]+</td><td class=\"num\">2<", timing
    )  # two jobs: one per smoke backbone
    # the viewer's data: three studies, PSNR on every reconstruction tile
    data = json.loads(re.search(r'<script type="application/json" id="viewer-data">(.*?)</script>',
                                html, re.S).group(1))  # fmt: skip
    groups = {g["id"]: g for g in data["groups"]}
    assert list(groups) == ["decoder", "tokenizer", "sparse"]
    for g in groups.values():
        for im in g["images"]:
            recon = [t for t in im["tiles"] if t["ref"] is not None]
            assert recon and all(t["psnr"] is not None for t in recon), (g["id"], im["name"])
    tok = groups["tokenizer"]["images"][0]["tiles"]
    assert all(t["bpp"] is not None for t in tok if t["label"] != "target")
    assert any(t["label"].startswith("JPEG q") for t in tok)
    assert [t["label"].split(":")[0] for t in groups["sparse"]["images"][0]["tiles"]] == [
        "observed (5%)",
        "truth",
        "best cell",
        "best baseline",
    ]
    assert size_mb < 15
    assert "reconlab-pending-" not in html  # every figure encoded on a worker was filled in
    print(f"smoke report: {size_mb:.2f} MB")


@pytest.mark.slow
def test_snakemake_report_has_every_study_figure_by_category(smoke_copy, tmp_path):
    """`snakemake --report`: the outputs marked with report(), one category per study."""
    import zipfile

    from conftest import SMOKE, snakemake

    out = tmp_path / "report.zip"
    snakemake(smoke_copy, "--report", str(out), *SMOKE)
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        page = z.read("report/report.html").decode()
    figures = sorted(Path(n).name for n in names if n.endswith(".png"))
    for name in ("comparison.png", "loss_plot.png", "maps.png", "improvement_heatmap.png",
                 "psnr_vs_bpp.png", "resolution_scaling.png", "fields.png"):  # fmt: skip
        assert name in figures, name
    assert figures.count("comparison.png") == 2  # one per smoke backbone
    for category in ("Data", "Feature inversion", "Tokenizer", "Sparse query",
                     "Dense-feature diagnostics"):  # fmt: skip
        assert category in page, category


def test_tokenizer_tiles_pick_the_jpeg_nearest_in_bpp_and_crop_large_images(tmp_path):
    root = tmp_path / "results" / "tokenizer"
    jpeg_rows = [{"quality": q, "file": f"a/q{q}.jpg", "bpp": bpp, "psnr": 20 + q / 10}
                 for q, bpp in ((5, 0.2), (50, 1.0), (90, 3.0))]  # fmt: skip
    for row in jpeg_rows:
        (root / "jpeg/images/a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((300, 300, 3), row["quality"], np.uint8)).save(
            root / "jpeg/images" / row["file"], quality=95
        )
    _png(root / "jpeg/images/a/target.png", 7, size=300)
    (root / "jpeg/images/index.json").write_text(json.dumps(
        {"resolution": 300, "images": [{"image": "skimage:a", "target": "a/target.png",
                                        "jpeg": jpeg_rows}]}))  # fmt: skip
    for variant, bpp in (("f8-K16", 0.9), ("f4-K16", 2.5)):
        _png(root / variant / "recon/a.png", 9, size=300)
        (root / variant / "recon/index.json").write_text(json.dumps(
            {"resolution": 300, "images": [{"image": "skimage:a", "file": "a.png",
                                            "psnr": 15.0, "bpp": bpp}]}))  # fmt: skip
    (group,) = viewer_data(tmp_path / "results", [], ["f8-K16", "f4-K16"], 12)["groups"]
    tiles = group["images"][0]["tiles"]
    assert [t["label"] for t in tiles] == ["target", "f8-K16", "f4-K16", "JPEG q50", "JPEG q90"]
    assert tiles[3]["note"] == "nearest bpp to f8-K16" and tiles[4]["bpp"] == 3.0
    assert tiles[0]["note"] == "300 px, centre 256 px shown"
    assert _decode(
        viewer_data(tmp_path / "results", [], ["f8-K16"], 12)["assets"][tiles[1]["img"]]
    ).shape == (256, 256, 3)


def test_figures_are_inlined_compactly_and_small_ones_losslessly(tmp_path):
    from skimage import data as images

    from reconlab.report.context import LOSSY_FIGURE_BYTES, figure

    photo = Image.fromarray(images.astronaut()).resize((1400, 1400))
    photo.save(tmp_path / "grid.png")  # a photo grid at 2x: megabytes as PNG
    assert (tmp_path / "grid.png").stat().st_size > 4 * LOSSY_FIGURE_BYTES
    big = figure(tmp_path / "grid.png", "grid")
    assert big.src.startswith("data:image/webp;base64,") and big.width == 1400
    assert len(big.src) * 3 / 4 < (tmp_path / "grid.png").stat().st_size / 3
    assert _decode(big.src).shape == (1400, 1400, 3)
    _png(tmp_path / "chart.png", 42, size=64)  # small: lossless, pixels identical
    assert (_decode(figure(tmp_path / "chart.png").src) == 42).all()
    assert figure(tmp_path / "nope.png", "gone").missing.endswith("nope.png")


def test_compute_rows_come_from_what_ran_not_from_requests_or_summaries(tmp_path):
    from reconlab.report.provenance import compute_rows

    results = tmp_path / "results"
    record = {"device": "cpu", "precision": "bf16", "precision_requested": "auto",
              "precision_reason": "native bf16", "cpu_capability": "AVX512+BF16",
              "torch": "2.4.0"}  # fmt: skip
    for path, data in {
        "decoder/b/metrics.json": {"psnr": 11.0, **record},
        "decoder/c/metrics.json": {"psnr": 12.0, **record},  # the same setting: one row
        "tokenizer/v/train_log.json": {"metadata": {"device": "cpu", "precision": "auto"}},
        "sparse/cells/ema/seed0/metrics.json": {"runtime": {**record, "precision": "fp32"}},
        "metrics/smoke/decoder.json": {"compute": record},
    }.items():
        (results / path).parent.mkdir(parents=True, exist_ok=True)
        (results / path).write_text(json.dumps(data))
    frame = compute_rows(results)
    assert frame[["study", "precision"]].values.tolist() == [
        ["decoder", "bf16"],
        ["sparse", "fp32"],
    ]
    assert set(frame.columns) >= {"cpu_capability", "torch", "precision_reason"}


def test_figures_encoded_on_worker_threads_fill_in_the_same_page(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from reconlab.report.context import ReportContext

    _png(tmp_path / "a.png", 7, size=32)
    _png(tmp_path / "b.png", 200, size=48)
    now = ReportContext(tmp_path, tmp_path)  # no encoder: encoded at once, in this thread
    inline = [now.figure(tmp_path / n).src for n in ("a.png", "b.png")]
    assert all(s.startswith("data:image/") for s in inline)
    with ThreadPoolExecutor(2) as pool:
        ctx = ReportContext(tmp_path, tmp_path, encoder=pool)
        a, b = ctx.figure(tmp_path / "a.png"), ctx.figure(tmp_path / "b.png")
        assert (a.src, b.src) == ("reconlab-pending-0.", "reconlab-pending-1.")
        assert ctx.figure(tmp_path / "nope.png").missing.endswith("nope.png")
        page = ctx.resolve(f'<img src="{b.src}"><img src="{a.src}"><img src="{b.src}">')
    assert page == f'<img src="{inline[1]}"><img src="{inline[0]}"><img src="{inline[1]}">'
