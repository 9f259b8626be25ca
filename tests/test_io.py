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
