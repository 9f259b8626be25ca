"""Atomic writes: all-or-nothing, and results readable like any normally created file."""

import json
import math
import os
import stat

import numpy as np
import pytest
import torch

from reconlab.io import atomic_dir, atomic_path, null_non_finite, write_json


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_outputs_get_the_usual_permissions_not_mkstemps_private_ones(tmp_path, umask_022):
    write_json(tmp_path / "a.json", {"x": 1})
    assert _mode(tmp_path / "a.json") == 0o644
    with atomic_dir(tmp_path / "d") as d:
        (d / "f.txt").write_text("ok")
    assert _mode(tmp_path / "d") == 0o755


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert (tmp_path / "a.json").read_text() == '{\n  "x": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_write_json_refuses_nan_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"m.json: a.b\[1\] is nan"):
        write_json(tmp_path / "m.json", {"a": {"b": [1.0, math.nan]}})
    assert not (tmp_path / "m.json").exists()


def test_null_non_finite_is_the_one_way_undefined_values_reach_json(tmp_path):
    obj = {
        "std": math.nan,
        "gain": -math.inf,
        "n": np.int64(3),
        "ok": True,
        "name": "x",
        "psnr": np.float32(20.5),
        "mean": torch.tensor(0.25),
        "empty": torch.tensor(float("nan")),
        "ratios": (0.5, math.inf),
        "none": None,
    }
    clean = null_non_finite(obj)
    assert clean["std"] is None and clean["gain"] is None and clean["empty"] is None
    assert clean["n"] == 3 and clean["ok"] is True and clean["name"] == "x"
    assert clean["psnr"] == 20.5 and type(clean["psnr"]) is float
    assert clean["mean"] == 0.25 and type(clean["mean"]) is float
    assert clean["ratios"] == [0.5, None] and clean["none"] is None
    clean["n"] = int(clean["n"])
    write_json(tmp_path / "m.json", clean)
    assert json.loads((tmp_path / "m.json").read_text())["gain"] is None


def test_equal_models_are_equal_files_whatever_the_metadata_order(tmp_path):
    """The in-process half of test_model_files_are_byte_identical_across_processes: the header
    is written with sorted keys, so insertion (or hash-map) order never reaches the bytes."""
    from reconlab.io import load_safetensors, save_safetensors

    torch.manual_seed(0)
    tensors = {"w": torch.randn(4, 4), "b": torch.zeros(3)}
    save_safetensors(tmp_path / "a", tensors, {"config": "{}", "train": "{}", "zeta": "z"})
    save_safetensors(
        tmp_path / "b",
        dict(reversed(tensors.items())),
        {"zeta": "z", "train": "{}", "config": "{}"},
    )
    a = (tmp_path / "a").read_bytes()
    assert (tmp_path / "b").read_bytes() == a
    (n,) = np.frombuffer(a[:8], dtype="<u8")
    header = json.loads(a[8 : 8 + int(n)])
    assert list(header) == sorted(header) and list(header["__metadata__"]) == sorted(
        header["__metadata__"]
    )
    assert load_safetensors(tmp_path / "a")[1]["zeta"] == "z"
