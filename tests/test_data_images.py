"""prepare_images on a folder of awkward files, and on the bundled photos."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from reconlab.config import DataConfig, ParamsError
from reconlab.data.decode import BadImage, decode_image
from reconlab.data.images import SPLITS, assign_splits, prepare_images
from reconlab.io import read_csv, sha256_file


def _photo(seed: int, w: int = 120, h: int = 90) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def awkward_folder(tmp_path):
    """One valid file of every supported kind, plus broken ones and a duplicate."""
    d = tmp_path / "photos"
    (d / "nested").mkdir(parents=True)
    Image.fromarray(_photo(0)).save(d / "rgb.jpg", quality=95)
    Image.fromarray(_photo(1)[..., 0]).save(d / "gray.png")
    Image.fromarray(np.dstack([_photo(2), np.full((90, 120), 128, np.uint8)])).save(d / "rgba.png")
    Image.fromarray(_photo(3)).convert("P").save(d / "palette.png")
    Image.fromarray(_photo(4)[..., 0].astype(np.uint16) * 257).save(d / "deep16.png")
    Image.fromarray(_photo(5)).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(_photo(6)).save(d / "nested" / "deep.webp")
    Image.fromarray(_photo(7)).save(d / "nested" / "scan.tif")
    # EXIF orientation 6 (rotate 90° CW): a 120x90 file is a 90x120 photo.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_photo(8)).save(d / "rotated.jpg", exif=exif.tobytes())
    good = (d / "rgb.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (d / "notes.png").write_text("this is not an image")
    (d / "empty.jpg").write_bytes(b"")
    (d / "copy_of_rgb.jpg").write_bytes(good)
    (d / "readme.txt").write_text("ignored: not an image suffix")
    return d


def test_every_mode_decodes_to_rgb_uint8(awkward_folder):
    for name in ["rgb.jpg", "gray.png", "rgba.png", "palette.png", "deep16.png", "cmyk.jpg"]:
        arr = decode_image(awkward_folder / name)
        assert arr.dtype == np.uint8 and arr.shape == (90, 120, 3), name
    # 16-bit values are scaled, not clipped: the 8-bit original comes back.
    assert np.array_equal(decode_image(awkward_folder / "deep16.png")[..., 0], _photo(4)[..., 0])
    # alpha 128 over white: every value moves towards 255.
    rgba = decode_image(awkward_folder / "rgba.png").astype(int)
    assert (rgba >= _photo(2).astype(int) - 1).all()
    assert decode_image(awkward_folder / "rotated.jpg").shape == (120, 90, 3)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("truncated.jpg", "unreadable image"),
        ("notes.png", "not an image"),
        ("empty.jpg", "empty file"),
    ],
)
def test_broken_files_say_why(awkward_folder, name, reason):
    with pytest.raises(BadImage) as e:
        decode_image(awkward_folder / name)
    assert reason in e.value.reason


def test_prepare_folder_lists_rejects_and_splits_by_photo(awkward_folder, tmp_path):
    cfg = DataConfig(
        source=str(awkward_folder), crop_size=32, crops_per_image=3, resize_shorter=None
    )
    out = tmp_path / "prepared"
    summary = prepare_images(cfg, out)

    rejected = {r["file"]: r["reason"] for r in read_csv(out / "rejected.csv")}
    assert rejected["truncated.jpg"].startswith("unreadable image")
    assert rejected["notes.png"].startswith("not an image")
    assert rejected["empty.jpg"] == "empty file"
    dup = {"copy_of_rgb.jpg", "rgb.jpg"} & set(rejected)
    assert len(dup) == 1 and rejected[dup.pop()].startswith("duplicate of ")
    assert "readme.txt" not in rejected

    manifest = read_csv(out / "manifest.csv")
    assert len({r["source"] for r in manifest}) == 9  # 13 candidates - 4 rejected
    assert len(manifest) == 9 * 3 == sum(summary.crops.values())
    split_of_source: dict[str, set] = {}
    for r in manifest:
        split_of_source.setdefault(r["source"], set()).add(r["split"])
        assert (int(r["width"]), int(r["height"])) == (32, 32)
        assert sha256_file(out / r["file"]) == r["sha256"]
        assert (out / r["file"]).parent.name == r["split"]
    assert all(len(s) == 1 for s in split_of_source.values())  # no photo in two splits
    assert {s for v in split_of_source.values() for s in v} == set(SPLITS)


def test_bad_image_fail_mode_names_the_file_and_keeps_earlier_output(awkward_folder, tmp_path):
    out = tmp_path / "prepared"
    (awkward_folder / "truncated.jpg").unlink()
    (awkward_folder / "notes.png").unlink()
    (awkward_folder / "empty.jpg").unlink()
    (awkward_folder / "copy_of_rgb.jpg").unlink()
    cfg = DataConfig(
        source=str(awkward_folder), crop_size=32, crops_per_image=1, on_bad_image="fail"
    )
    prepare_images(cfg, out)
    before = (out / "manifest.csv").read_bytes()

    (awkward_folder / "broken.png").write_text("not a png")
    expected = "data: broken.png: not an image (format not recognised) (set data.on_bad_image: skip"
    with pytest.raises(ValueError, match=re.escape(expected)):
        prepare_images(cfg, out)
    assert (out / "manifest.csv").read_bytes() == before
    assert len(list((out / "images").rglob("*.png"))) == 9


def test_small_images_upscale_or_reject(tmp_path):
    d = tmp_path / "small"
    d.mkdir()
    for i in range(3):
        Image.fromarray(_photo(i, 40, 30)).save(d / f"s{i}.png")
    cfg = DataConfig(source=str(d), crop_size=64, crops_per_image=1, resize_shorter=None)
    prepare_images(cfg, tmp_path / "up")
    assert len(read_csv(tmp_path / "up" / "manifest.csv")) == 3

    cfg = DataConfig(**{**cfg.__dict__, "small_images": "reject"})
    with pytest.raises(ValueError, match="none of the 3 files"):
        prepare_images(cfg, tmp_path / "rej")


def test_empty_folder_and_missing_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"data.source: .*empty contains no images"):
        prepare_images(DataConfig(source=str(tmp_path / "empty")), tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        prepare_images(DataConfig(source=str(tmp_path / "missing")), tmp_path / "o")


def test_resize_smaller_than_crop_is_a_params_error(tmp_path):
    with pytest.raises(ParamsError, match=r"data.resize_shorter \(64\) must be >= data.crop_size"):
        prepare_images(DataConfig(crop_size=128, resize_shorter=64), tmp_path)


def test_bundled_photos_are_deterministic(tmp_path):
    cfg = DataConfig(crop_size=32, crops_per_image=2, resize_shorter=48)
    prepare_images(cfg, tmp_path / "a")
    prepare_images(cfg, tmp_path / "b")
    a = (tmp_path / "a" / "manifest.csv").read_bytes()
    assert a == (tmp_path / "b" / "manifest.csv").read_bytes()
    rows = read_csv(tmp_path / "a" / "manifest.csv")
    assert {r["source"] for r in rows} >= {"skimage:astronaut", "skimage:coffee"}
    prepare_images(DataConfig(**{**cfg.__dict__, "seed": 1}), tmp_path / "c")
    assert (tmp_path / "c" / "manifest.csv").read_bytes() != a


def test_assign_splits_counts_and_seed():
    keys = [f"k{i}" for i in range(10)]
    a = assign_splits(keys, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    assert sorted(a.values()).count("train") == 6
    assert sorted(a.values()).count("test") == 2
    assert a == assign_splits(list(reversed(keys)), {"train": 0.6, "val": 0.2, "test": 0.2}, 0)
    assert a != assign_splits(keys, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    # Few sources: each requested split still gets one.
    b = assign_splits(["x", "y", "z"], {"train": 0.9, "val": 0.05, "test": 0.05}, seed=0)
    assert sorted(b.values()) == ["test", "train", "val"]
    # A zero ratio means an empty split.
    c = assign_splits(keys, {"train": 1.0, "val": 0.0, "test": 0.0}, seed=0)
    assert set(c.values()) == {"train"}
