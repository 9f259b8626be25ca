"""make_fields: determinism, value range, families, stability under growth, checksums."""

from __future__ import annotations

import numpy as np
import pytest

from reconlab.config import FieldsConfig
from reconlab.data.fields import FAMILIES, generate_split, load_fields, make_field, make_fields


def test_six_families_in_unit_range():
    assert list(FAMILIES) == [
        "sinusoid",
        "multi_frequency",
        "radial",
        "interference",
        "modulated",
        "composite",
    ]
    for family in FAMILIES:
        f = make_field(family, 32, np.random.default_rng(0))
        assert f.shape == (32, 32) and f.dtype == np.float32
        assert f.min() == 0.0 and f.max() == 1.0  # min-max normalised before noise
        assert f.std() > 0.1, family  # a real pattern, not a constant


def test_sinusoid_is_a_single_plane_wave():
    f = make_field("sinusoid", 64, np.random.default_rng(3)).astype(np.float64)
    spectrum = np.abs(np.fft.fft2(f - f.mean()))
    peaks = np.sort(spectrum.ravel())[::-1]
    assert peaks[1] > 5 * peaks[4]  # energy in one ± frequency pair (leakage aside)


def test_split_is_deterministic_and_stable_when_growing():
    cfg = FieldsConfig(per_family={"train": 3, "val": 1, "test": 1})
    a = generate_split(cfg, "train")
    b = generate_split(cfg, "train")
    assert np.array_equal(a["fields"], b["fields"])
    bigger = generate_split(FieldsConfig(per_family={"train": 5, "val": 1, "test": 1}), "train")
    # family 0's first three fields are unchanged when there are five per family
    assert np.array_equal(bigger["fields"][:3], a["fields"][:3])
    assert not np.array_equal(generate_split(cfg, "test")["fields"][0], a["fields"][0])


def test_noise_levels_spread_and_clip():
    cfg = FieldsConfig(
        families=["radial"], per_family={"train": 4, "val": 1, "test": 1}, noise_levels=[0.0, 0.2]
    )
    s = generate_split(cfg, "train")
    assert np.allclose(s["noise"], [0.0, 0.2, 0.0, 0.2])
    assert s["fields"].min() >= 0.0 and s["fields"].max() <= 1.0
    clean = FieldsConfig(families=["radial"], per_family={"train": 4, "val": 1, "test": 1})
    assert np.array_equal(generate_split(clean, "train")["fields"][0], s["fields"][0])


def test_make_fields_writes_index_and_detects_corruption(tmp_path):
    cfg = FieldsConfig(
        families=["sinusoid", "radial"], per_family={"train": 2, "val": 1, "test": 1}
    )
    index = make_fields(cfg, tmp_path / "fields")
    assert index["families"] == ["sinusoid", "radial"]
    assert {s: v["count"] for s, v in index["splits"].items()} == {"train": 4, "val": 2, "test": 2}
    test = load_fields(tmp_path / "fields", "test")
    assert test["fields"].shape == (2, 32, 32)
    assert test["family"].tolist() == [0, 1]
    (tmp_path / "fields" / "test.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="test.npz: checksum does not match"):
        load_fields(tmp_path / "fields", "test")
