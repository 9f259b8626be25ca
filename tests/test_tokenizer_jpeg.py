"""JPEG baseline: byte counts, a monotone rate-distortion curve, and placing a point on it."""

from __future__ import annotations

import numpy as np
import pytest

from reconlab.tokenizer.jpeg import compare_to_jpeg, jpeg_curve, jpeg_psnr_at, jpeg_roundtrip


def _photo(size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    rgb = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1) % 256
    return rgb.astype(np.uint8)


def test_roundtrip_returns_pixels_and_file_size():
    img = _photo()
    decoded, nbytes = jpeg_roundtrip(img, 50)
    assert decoded.shape == img.shape and decoded.dtype == np.uint8
    assert 100 < nbytes < img.nbytes
    with pytest.raises(ValueError, match="1..95"):
        jpeg_roundtrip(img, 0)


def test_curve_rate_and_quality_increase_with_jpeg_quality():
    rows = jpeg_curve([_photo(), _photo()[::-1].copy()], [5, 50, 95])
    bpp = [r["bpp"] for r in rows]
    psnr = [r["psnr"] for r in rows]
    assert bpp == sorted(bpp) and psnr == sorted(psnr)
    # bpp counts whole-file bytes: 8 * bytes / pixels
    _, nbytes = jpeg_roundtrip(_photo(), 5)
    _, nbytes2 = jpeg_roundtrip(_photo()[::-1].copy(), 5)
    assert rows[0]["bpp"] == pytest.approx(8 * (nbytes + nbytes2) / 2 / 64**2)


def test_placing_a_point_on_the_curve():
    rows = [{"quality": 10, "bpp": 0.5, "psnr": 25.0}, {"quality": 90, "bpp": 2.0, "psnr": 35.0}]
    assert jpeg_psnr_at(rows, 1.0) == pytest.approx(30.0)  # halfway in log-bpp
    assert jpeg_psnr_at(rows, 0.1) is None
    better = compare_to_jpeg(rows, 1.0, 31.0)
    assert better["beats_jpeg"] and better["delta_db"] == pytest.approx(1.0)
    assert not compare_to_jpeg(rows, 1.0, 29.0)["beats_jpeg"]
    below = compare_to_jpeg(rows, 0.1, 26.0)  # fewer bits than JPEG's smallest file, higher PSNR
    assert below["beats_jpeg"] and "below JPEG's lowest rate" in below["note"]
    assert not compare_to_jpeg(rows, 0.1, 20.0)["beats_jpeg"]
    assert not compare_to_jpeg(rows, 5.0, 40.0)["beats_jpeg"]
