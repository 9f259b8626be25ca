"""Rate–distortion per quantizer family: crossings with the JPEG curve, intervals, sentences."""

from __future__ import annotations

import pytest

from reconlab.tokenizer.rd import beats_intervals, family_of, plot_rd, rd_summary, statement

JPEG = [(0.1, 20.0), (0.4, 26.0), (1.6, 32.0)]  # (bpp, PSNR): +3 dB per doubling of bpp


def test_family_of_variant_names():
    assert [family_of(v) for v in ("f8x16-K1024", "f8-FSQ8.5.5.5")] == ["VQ", "FSQ"]


def test_a_steeper_family_crosses_jpeg_once_where_the_lines_meet():
    # family: 21 dB at 0.1 bpp, 25 dB at 0.4 bpp (+2 dB per doubling): equal at 0.2 bpp
    r = beats_intervals([(0.1, 21.0), (0.4, 25.0)], JPEG)
    assert r["compared_bpp"] == [0.1, 0.4]
    assert r["crossings_bpp"] == [pytest.approx(0.2, rel=1e-2)]
    assert r["beats_bpp"] == [[0.1, pytest.approx(0.2, rel=1e-2)]]
    assert statement("VQ", "psnr", r).startswith("VQ beats JPEG in PSNR at 0.1–0.2 bpp")


def test_a_family_below_jpeg_never_beats_it_and_disjoint_ranges_are_not_compared():
    r = beats_intervals([(0.2, 18.0), (0.8, 24.0)], JPEG)
    assert r["beats_bpp"] == [] and r["crossings_bpp"] == []
    assert statement("FSQ", "ssim", r) == "FSQ never beats JPEG in SSIM over 0.2–0.8 bpp"
    far = beats_intervals([(3.0, 40.0), (4.0, 41.0)], JPEG)
    assert far["compared_bpp"] is None and "no bpp in common" in statement("VQ", "psnr", far)


def test_one_variant_family_is_a_point_on_or_off_the_curve():
    assert beats_intervals([(0.2, 30.0)], JPEG)["beats_bpp"] == [[0.2, 0.2]]
    assert beats_intervals([(0.2, 10.0)], JPEG)["beats_bpp"] == []


def test_summary_per_family_and_figure(tmp_path):
    rows = [
        {"variant": "f8x16-K256", "bpp": 0.125, "psnr": 21.0, "ssim": 0.60},
        {"variant": "f4x8-K256", "bpp": 0.5, "psnr": 25.0, "ssim": 0.70},
        {"variant": "f8-FSQ8.5.5.5", "bpp": 0.156, "psnr": 19.0, "ssim": 0.50},
    ]
    jpeg = [{"bpp": b, "psnr": p, "ssim": 0.5 + p / 100} for b, p in JPEG]
    s = rd_summary(rows, jpeg)
    assert s["VQ"]["variants"] == ["f8x16-K256", "f4x8-K256"] and s["FSQ"]["variants"] == [
        "f8-FSQ8.5.5.5"
    ]
    assert s["VQ"]["psnr"]["beats_bpp"] and not s["FSQ"]["psnr"]["beats_bpp"]
    plot_rd(rows, jpeg, s, 512, tmp_path / "rd.png")
    assert (tmp_path / "rd.png").stat().st_size > 10_000
