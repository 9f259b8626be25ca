"""The shared figure helper: its audit catches illegible figures, and every stage figure passes it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from reconlab.figures import (
    DPI,
    MIN_FONT_PT,
    UNTRAINED_TEXT,
    audit,
    integer_ticks,
    mark_untrained,
    pyplot,
    read_audit,
    save_figure,
)

PROBLEMS = ("small_text", "overlapping_ticks", "overlapping_text", "maps_without_colorbar")


def test_audit_flags_small_text_overlapping_ticks_and_maps_without_colorbar():
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(4, 2))
    a.set_title("tiny", fontsize=6)
    fig.suptitle("a title")
    fig.text(0.5, 0.98, "a header on the title", ha="center", va="top")
    a.set_xticks(np.arange(40), [f"label{i}" for i in range(40)])
    b.imshow(np.random.default_rng(0).random((4, 4)), cmap="viridis")
    b.set_title("map")
    result = audit(fig)
    plt.close(fig)
    assert result["min_font_pt"] == 6
    assert any("'tiny' 6pt" in s for s in result["small_text"])
    assert result["overlapping_ticks"] and "'label0' / 'label1'" in result["overlapping_ticks"]
    assert result["overlapping_text"] == ["'a title' / 'a header on the title'"]
    assert len(result["maps_without_colorbar"]) == 1
    assert result["maps_without_colorbar"][0].startswith("map (viridis")


def test_a_clean_figure_passes_and_is_saved_at_2x_with_its_audit(tmp_path):
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 3), layout="constrained")
    a.plot([0, 1, 2], [3, 1, 2])
    a.set_xlabel("epoch")
    integer_ticks(a)
    im = b.imshow(np.zeros((4, 4)), cmap="magma", vmin=0, vmax=1)
    fig.colorbar(im, ax=b)
    b.imshow(np.ones((2, 2)), cmap="magma", vmin=0, vmax=1)  # same scale: one colorbar suffices
    out = tmp_path / "sub" / "clean.png"
    result = save_figure(fig, out, untrained="random:0")
    assert result["small_text"] == [] and result["overlapping_ticks"] == []
    assert result["maps_without_colorbar"] == []
    assert result["min_font_pt"] >= MIN_FONT_PT and result["untrained_marker"] is True
    assert read_audit(out) == result
    with Image.open(out) as png:
        assert round(png.info["dpi"][0]) == DPI
        assert png.width > 6 * DPI * 0.8  # 2x pixels: the report shows it at half size
    assert list(tmp_path.rglob("*.tmp*")) == []  # atomic: nothing left behind
    ticks = [t.get_text() for t in a.get_xticklabels()]
    assert all("." not in t for t in ticks if t)  # whole epochs only


def test_untrained_marker_appears_once_and_only_for_random_weights():
    plt = pyplot()
    fig = plt.figure()
    assert mark_untrained(fig, ["sha256:abc", "random:3"]) is True
    assert mark_untrained(fig, ["random:3"]) is False  # already marked
    texts = [t.get_text() for t in fig.texts]
    assert texts == [UNTRAINED_TEXT.format("random:3")]
    fig2 = plt.figure()
    assert mark_untrained(fig2, ["sha256:abc"]) is False and fig2.texts == []
    plt.close("all")


def test_read_audit_is_none_for_a_png_saved_another_way(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert read_audit(tmp_path / "plain.png") is None


@pytest.mark.slow
def test_stage_figures_meet_the_standard(tmp_path):
    """Each stage's plotting function on small synthetic inputs: no finding in the audit."""
    from reconlab.decoder.plots import loss_plot
    from reconlab.sparse.plots import improvement_heatmap, sample_grid
    from reconlab.tokenizer.plots import plot_psnr_vs_bpp, plot_resolution_scaling

    log = [{"epoch": e, "train_loss": 1 / (e + 1), "val_loss": 1.2 / (e + 1)} for e in range(3)]
    loss_plot(log, tmp_path / "loss.png", "dinov2_s14: decoder loss", untrained=True)
    rng = np.random.default_rng(0)
    cells = ["baseline", "ema", "adaln", "ema+adaln+self_conditioning+fourier_features"]
    families = ["gaussian_blobs", "sinusoids", "smooth_noise", "edges"]
    improvement_heatmap(tmp_path / "heat.png", cells, families, rng.normal(0, 3, (4, 4)), "gain")
    truth = rng.random((3, 32, 32))
    masks = rng.random((3, 1024)) < 0.05
    sample_grid(tmp_path / "grid.png", truth, truth * 0.9, masks, families[:3], "ema (seed 0)")
    rows = [
        {"variant": v, "resolution": r, "bpp": bpp * (64 / r) ** 0, "psnr": 20 + i,
         "encode_img_s": 10.0 / r, "decode_img_s": 12.0 / r, "peak_mem_mb": r / 2, "tiled": r > 64}
        for i, (v, bpp) in enumerate([("f4x4-K16", 0.25), ("f8x16-K1024", 0.156)])
        for r in (64, 128, 256)
    ]  # fmt: skip
    jpeg = {
        r: [{"quality": q, "bpp": q / 40, "psnr": 20 + q / 10, "ssim": 0.5} for q in (5, 50, 90)]
        for r in (64, 128, 256)
    }
    plot_psnr_vs_bpp(rows, jpeg, tmp_path / "rd.png")
    plot_resolution_scaling(rows, tmp_path / "scaling.png")
    for png in sorted(tmp_path.glob("*.png")):
        found = read_audit(png)
        assert found is not None, png.name
        problems = {k: found[k] for k in PROBLEMS}
        assert problems == {k: [] for k in problems}, png.name
        assert found["min_font_pt"] >= MIN_FONT_PT, png.name
    assert read_audit(tmp_path / "loss.png")["untrained_marker"] is True


@pytest.mark.slow
def test_every_figure_of_the_smoke_run_meets_the_standard(smoke_project):
    """Every PNG figure a smoke run writes under results/ went through the helper and passes."""
    figures = [
        p
        for p in sorted((smoke_project / "results").rglob("*.png"))
        if p.name not in ("pred.png", "target.png")  # per-image pictures, not figures
        and not {"recon", "images"} & set(p.relative_to(smoke_project).parts)
    ]
    assert len(figures) >= 8
    for png in figures:
        found = read_audit(png)
        rel = png.relative_to(smoke_project)
        assert found is not None, f"{rel} was not saved by reconlab.figures.save_figure"
        for key in PROBLEMS:
            assert found[key] == [], f"{rel}: {key} {found[key]}"
        assert found["dpi"] == DPI
