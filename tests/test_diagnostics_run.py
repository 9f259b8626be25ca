"""Diagnostics runs on small real feature caches (written with the cache's own writer)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from reconlab.cli import main
from reconlab.config import DiagnosticsConfig
from reconlab.diagnostics.run import compare_backbones, diagnose_backbone
from reconlab.diagnostics.summary import summarize
from reconlab.features.cache import shard_name, write_index, write_shard
from reconlab.io import write_csv

SOURCES = ["cat", "cat", "dog", "dog", "owl", "owl"]  # two crops per source photo


def make_prepared(root, size=32):
    """data/prepared with 6 crops (4 train, 2 test) and their manifest."""
    rows, files = [], {"train": [], "test": []}
    rng = np.random.default_rng(0)
    for i, source in enumerate(SOURCES):
        split = "train" if i < 4 else "test"
        rel = f"images/{split}/{source}_{i:03d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / rel)
        rows.append({"file": rel, "source": f"skimage:{source}", "split": split})
        files[split].append(rel)
    write_csv(root / "manifest.csv", rows, ["file", "source", "split"])
    return files


def make_cache(root, files, grid, patch_size, weights_id="random:0", seed=0, dim=8, layers=()):
    """A cache whose CLS and mean patch token identify the source photo (retrieval is perfect),
    and whose patch grid is constant per image (smoothness exactly 1)."""
    g = torch.Generator().manual_seed(seed)
    per_source = {s: torch.randn(dim, generator=g) for s in sorted(set(SOURCES))}
    splits, h, w = {}, *grid
    for split, split_files in files.items():
        srcs = [f.split("/")[-1].split("_")[0] for f in split_files]
        base = torch.stack([per_source[s] for s in srcs])
        cls = base + 0.01 * torch.randn(len(srcs), dim, generator=g)
        patch = base[:, None, None, :].expand(-1, h, w, -1).clone()
        shards = []
        for k, start in enumerate(range(0, len(srcs), 3)):  # several shards per split
            sl = slice(start, start + 3)
            t = {"cls": cls[sl].to(torch.bfloat16), "patch": patch[sl].to(torch.bfloat16)}
            for layer in layers:  # an intermediate layer: noise, so smoothness is far from 1
                t[f"patch_layer{layer}"] = torch.randn(patch[sl].shape, generator=g).to(
                    torch.bfloat16
                )
            shards.append(write_shard(root / split / shard_name(k), t))
        splits[split] = {"count": len(srcs), "files": split_files, "shards": shards}
    index = {
        "backbone_id": root.name,
        "model": f"vit_test_patch{patch_size}",
        "weights": weights_id.split(":")[0],
        "weights_id": weights_id,
        "untrained": weights_id.startswith("random"),
        "dtype": "bf16",
        "image_size": [h * patch_size, w * patch_size],
        "patch_size": patch_size,
        "grid": [h, w],
        "embed_dim": dim,
        "num_prefix_tokens": 1,
        "layers": list(layers),
        "splits": splits,
    }
    write_index(root, index)
    return root


@pytest.fixture
def setup(tmp_path):
    prepared = tmp_path / "prepared"
    files = make_prepared(prepared)
    v2 = make_cache(tmp_path / "features" / "v2", files, (4, 4), 14)
    v3 = make_cache(tmp_path / "features" / "v3", files, (3, 3), 16, weights_id="abc123", seed=1)
    return tmp_path, prepared, v2, v3


def test_backbone_diagnostics_metrics_and_outputs(setup):
    tmp, prepared, v2, _ = setup
    cfg = DiagnosticsConfig(split="train", images=3, remove_directions=2)
    m = diagnose_backbone(v2, prepared, cfg, tmp / "out")
    for name in ("metrics.json", "per_image.csv", "maps.png", "smoothness.png"):
        assert (tmp / "out" / name).stat().st_size > 0
    from safetensors.torch import load_file

    arrays = load_file(tmp / "out" / "maps.safetensors")
    assert arrays["pca_rgb"].shape == (3, 4, 4, 3) and arrays["reference"].shape == (3, 4, 4)
    assert arrays["foreground"].dtype == torch.uint8
    torch.testing.assert_close(arrays["smoothness"], torch.ones(3, 4, 4), atol=1e-5, rtol=0)
    on_disk = json.loads((tmp / "out" / "metrics.json").read_text())
    assert on_disk == m
    assert m["untrained"] is True and m["weights"] == "random:0"
    assert m["smoothness_mean"] == pytest.approx(1.0, abs=1e-5)  # constant grid per image
    assert m["images"] == 4 and len(m["figure_images"]) == 3
    assert m["retrieval_items"] == 6 and m["retrieval_sources"] == 3
    for key in ("retrieval_recall_at_1_cls", "retrieval_recall_at_1_mean", "retrieval_map_mean"):
        assert m[key] == pytest.approx(1.0)
    assert m["retrieval_recall_at_5_cls"] == pytest.approx(1.0)
    assert "retrieval_map_cls_removed" in m and "retrieval_map_cls_change" in m
    assert m["reference_cell"] == [2, 2]
    assert m["reference_same_image_mean"] == pytest.approx(1.0, abs=1e-3)
    lines = (tmp / "out" / "per_image.csv").read_text().splitlines()
    assert lines[0] == "file,source,smoothness" and len(lines) == 5


def test_compare_resamples_the_larger_grid_and_states_it(setup):
    tmp, prepared, v2, v3 = setup
    cfg = DiagnosticsConfig(split="test", images=2)
    r = compare_backbones([v2, v3], prepared, cfg, tmp / "cmp.png", tmp / "cmp.json")
    assert (tmp / "cmp.png").stat().st_size > 0
    assert r["grid"] == [3, 3]
    assert r["per_backbone"]["v2"]["resampled"] is True
    assert r["per_backbone"]["v3"]["resampled"] is False
    assert r["per_backbone"]["v2"]["cell_pixels"] == pytest.approx([56 / 3, 56 / 3])
    assert r["per_backbone"]["v3"]["cell_pixels"] == [16.0, 16.0]
    assert r["untrained"] is True and r["weights"] == ["random:0", "abc123"]
    # An explicit grid resamples both.
    cfg = DiagnosticsConfig(split="test", images=2, compare_grid=[2, 2])
    r = compare_backbones([v2, v3], prepared, cfg, tmp / "cmp.png", tmp / "cmp.json")
    assert r["grid"] == [2, 2] and all(e["resampled"] for e in r["per_backbone"].values())

    s = summarize([], [tmp / "cmp.json"], tmp / "metrics.json")
    assert s["compare"]["v2--v3"]["grid_cells"] == 4
    assert s["compare"]["v2--v3"]["smoothness_mean_equal_grid_v2"] == pytest.approx(1, abs=1e-5)


def test_trained_weights_get_no_untrained_mark(setup):
    tmp, prepared, _, v3 = setup
    m = diagnose_backbone(v3, prepared, DiagnosticsConfig(split="test"), tmp / "out")
    assert m["untrained"] is False and m["weights"] == "abc123"


def test_bad_inputs_name_the_key_or_file(setup):
    tmp, prepared, v2, v3 = setup
    with pytest.raises(ValueError, match="diagnostics.reference_image"):
        diagnose_backbone(v2, prepared, DiagnosticsConfig(split="test", reference_image=5), tmp)
    with pytest.raises(ValueError, match="diagnostics.split.*'val'"):
        diagnose_backbone(v2, prepared, DiagnosticsConfig(split="val"), tmp)
    # A manifest that does not know a cached image.
    manifest = prepared / "manifest.csv"
    manifest.write_text("\n".join(manifest.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"manifest.csv: no row for cached image"):
        diagnose_backbone(v2, prepared, DiagnosticsConfig(split="test"), tmp / "x")
    assert not (tmp / "x" / "metrics.json").exists()


def test_compare_refuses_caches_of_different_images(tmp_path):
    prepared = tmp_path / "prepared"
    files = make_prepared(prepared)
    a = make_cache(tmp_path / "a", files, (2, 2), 14)
    other = {"train": files["train"], "test": files["test"][::-1]}
    b = make_cache(tmp_path / "b", other, (2, 2), 16)
    with pytest.raises(ValueError, match="lists different images"):
        compare_backbones([a, b], prepared, DiagnosticsConfig(), tmp_path / "f.png", tmp_path / "j")


def test_cli_commands(setup, capsys):
    tmp, prepared, v2, v3 = setup
    params = json.dumps({"split": "test", "images": 2})
    out = tmp / "res" / "v2"
    args = ["--params", params, "--prepared", str(prepared)]
    assert main(["dino-diagnostics", *args, "--cache", str(v2), "--out", str(out)]) == 0
    assert "(UNTRAINED)" in capsys.readouterr().out
    fig, js = tmp / "res" / "cmp.png", tmp / "res" / "cmp.json"
    assert (
        main(["compare-backbones", *args, str(v2), str(v3), "--figure", str(fig), "--out", str(js)])
        == 0
    )
    metrics = tmp / "metrics" / "diagnostics.json"
    argv = ["summarize-diagnostics", "--metrics", str(out / "metrics.json"), "--compare", str(js)]
    assert main([*argv, "--out", str(metrics)]) == 0
    s = json.loads(metrics.read_text())
    row = s["backbones"]["v2"]
    assert row["untrained"] is True and row["weights"] == "random:0"
    assert all(isinstance(v, (int, float, str, bool)) for v in row.values())  # scalars for DVC
    # where it ran: always fp32 on the CPU, the same block every computing stage's metrics carry
    ran = json.loads((out / "metrics.json").read_text())
    compute = {"device": "cpu", "precision": "fp32", "torch": torch.__version__}
    assert s["compute"] == {**compute, "cpu_capability": ran["cpu_capability"]}
    assert not math.isnan(row["smoothness_mean"])
    # A bad params value is one line naming the key.
    bad = json.dumps({"reference_point": [2, 0.5]})
    assert main(["dino-diagnostics", "--params", bad, "--cache", str(v2), "--out", str(out)]) == 1
    assert "diagnostics.reference_point" in capsys.readouterr().err


def test_report_section_and_untrained_marks(setup):
    import matplotlib.pyplot as plt

    from reconlab.figures import mark_untrained as untrained_mark
    from reconlab.report.context import ReportContext
    from reconlab.report.sections import diagnostics as section

    tmp, prepared, v2, v3 = setup
    results = tmp / "results"
    ctx = ReportContext(results=results, metrics=tmp / "metrics")
    assert section.render(ctx) is None  # nothing run yet: no section
    cfg = DiagnosticsConfig(split="test", images=2)
    diagnose_backbone(v2, prepared, cfg, results / "diagnostics" / "v2")
    diagnose_backbone(v3, prepared, cfg, results / "diagnostics" / "v3")
    compare_backbones(
        [v2, v3],
        prepared,
        cfg,
        results / "diagnostics/compare/v2--v3.png",
        results / "diagnostics/compare/v2--v3.json",
    )
    html = section.render(ctx)
    assert "untrained backbone (random:0)" in html
    assert html.count("<tr>") == 6  # (header + two backbones) in each of two tables
    assert (
        '<td class="text">yes</td>' in html and '<td class="text">3x3</td>' in html
    )  # v2's 4x4 resampled to 3x3
    assert html.count('src="data:image/') == 5  # pair + 2 x (maps, smoothness)

    fig = plt.figure()
    untrained_mark(fig, ["abc123", "random:3"])
    assert [t.get_text() for t in fig.texts] == [
        "UNTRAINED — random weights (random:3): not a pretrained result"
    ]
    fig2 = plt.figure()
    untrained_mark(fig2, ["abc123"])
    assert fig2.texts == []
    plt.close("all")


def test_two_runs_write_identical_metrics(setup):
    tmp, prepared, v2, _ = setup
    cfg = DiagnosticsConfig(split="train", images=2)
    diagnose_backbone(v2, prepared, cfg, tmp / "a")
    diagnose_backbone(v2, prepared, cfg, tmp / "b")
    for name in ("metrics.json", "per_image.csv"):
        assert (tmp / "a" / name).read_bytes() == (tmp / "b" / name).read_bytes()


def test_an_intermediate_layer_is_read_when_asked(tmp_path):
    prepared = tmp_path / "prepared"
    cache = make_cache(tmp_path / "v2", make_prepared(prepared), (4, 4), 14, layers=(1,))
    final = diagnose_backbone(cache, prepared, DiagnosticsConfig(), tmp_path / "final")
    mid = diagnose_backbone(cache, prepared, DiagnosticsConfig(layer=1), tmp_path / "mid")
    assert final["tensor"] == "patch" and mid["tensor"] == "patch_layer1"
    assert final["smoothness_mean"] == pytest.approx(1.0, abs=1e-5)
    assert abs(mid["smoothness_mean"]) < 0.5  # independent noise per patch
    with pytest.raises(
        ValueError, match=r"diagnostics.layer: .* caches no layer 7 \(cached: \[1\]"
    ):
        diagnose_backbone(cache, prepared, DiagnosticsConfig(layer=7), tmp_path / "x")
