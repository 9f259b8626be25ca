"""Bad input files for prepare-images: each is a recorded skip (or one line under ``fail``), and
no earlier good output is lost. Run through the real CLI entry point on generated files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reliability_files import (
    adobe_to_srgb,
    good_folder,
    photo,
    png_claiming,
    tree_bytes,
    wide_gamut_icc,
    write_raw_name,
)

from reconlab.cli import main
from reconlab.data.decode import BadImage, decode, decode_image
from reconlab.io import name_text, read_csv, sha256_file, text_name

SMALL = {"crop_size": 32, "crops_per_image": 1, "resize_shorter": 48}


def prepare(source: Path, out: Path, capsys, **params) -> tuple[int, str]:
    """``reconlab prepare-images`` on ``source``; returns (exit code, stderr)."""
    cfg = {"source": str(source), **SMALL, **params}
    rc = main(["prepare-images", "--params", json.dumps(cfg), "--out", str(out)])
    return rc, capsys.readouterr().err


def error_lines(err: str) -> list[str]:
    """The CLI's error lines (stderr also carries tqdm progress bars)."""
    return [line for line in err.splitlines() if line.startswith("reconlab ")]


def rejected(out: Path) -> dict[str, str]:
    return {r["file"]: r["reason"] for r in read_csv(out / "rejected.csv")}


def assert_consistent(out: Path) -> list[dict]:
    """Every manifest row's file exists with its checksum, and no unlisted crop lies around."""
    rows = read_csv(out / "manifest.csv")
    for r in rows:
        assert sha256_file(out / r["file"]) == r["sha256"], r["file"]
    on_disk = {p.relative_to(out).as_posix() for p in (out / "images").rglob("*.png")}
    assert on_disk == {r["file"] for r in rows}
    assert not list(out.glob(".*")), "a staging or backup folder was left behind"
    return rows


# --- fault 1: any decode failure is that file's problem --------------------------------------


def test_decompression_bomb_is_a_recorded_skip(tmp_path, capsys):
    src = good_folder(tmp_path / "photos")
    (src / "bomb.png").write_bytes(png_claiming(20000, 20000))
    assert (src / "bomb.png").stat().st_size < 1024
    rc, err = prepare(src, tmp_path / "out", capsys)
    assert rc == 0, err
    assert rejected(tmp_path / "out")["bomb.png"].startswith("too large to decode safely")
    assert len({r["source"] for r in assert_consistent(tmp_path / "out")}) == 6


def test_decompression_bomb_under_fail_is_one_line_naming_the_file(tmp_path, capsys):
    src = good_folder(tmp_path / "photos")
    (src / "bomb.png").write_bytes(png_claiming(20000, 20000))
    rc, err = prepare(src, tmp_path / "out", capsys, on_bad_image="fail")
    assert rc == 1
    assert "Traceback" not in err
    [line] = error_lines(err)
    assert line.startswith("reconlab prepare-images: error: data: bomb.png: too large to decode")
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_any_exception_type_while_decoding_becomes_bad_image(tmp_path):
    # A garbage ICC profile makes LittleCMS (not the PNG decoder) raise: still this file's problem.
    Image.fromarray(photo(0)).save(tmp_path / "badicc.png", icc_profile=b"not a profile" * 20)
    with pytest.raises(BadImage, match="unreadable image"):
        decode_image(tmp_path / "badicc.png")
    (tmp_path / "bomb.png").write_bytes(png_claiming(20000, 20000))
    with pytest.raises(BadImage, match=r"bomb.png: too large to decode safely \(Image size"):
        decode_image(tmp_path / "bomb.png")


# --- fault 2: any file name, and outputs that change together or not at all -------------------


def test_non_utf8_name_after_a_good_run_keeps_outputs_consistent(tmp_path, capsys):
    src = good_folder(tmp_path / "photos", n=4)
    out = tmp_path / "out"
    assert prepare(src, out, capsys)[0] == 0
    assert len(assert_consistent(out)) == 4
    name = write_raw_name(src, b"caf\xe9.png", b"")
    Image.fromarray(photo(9)).save(src / name)
    rc, err = prepare(src, out, capsys)
    assert rc == 0, err
    rows = assert_consistent(out)
    assert len(rows) == 5
    label = next(r["source"] for r in rows if r["source"].startswith("caf"))
    assert label == "caf\\xe9.png"
    assert os.fsencode(text_name(label)) == b"caf\xe9.png"  # lossless


@pytest.mark.parametrize(
    "raw",
    [
        b"caf\xe9.png",
        b"with space.png",
        b"new\nline.png",
        b"--leading-dash.png",
        b"back\\slash\\xe9.png",
        "日本語.png".encode(),
        b"L" * 251 + b".png",  # 255 bytes, the ext4 limit
    ],
)
def test_every_name_the_file_system_allows_works_and_round_trips(tmp_path, capsys, raw):
    src = good_folder(tmp_path / "photos", n=2)
    name = write_raw_name(src, raw, b"")
    Image.fromarray(photo(7)).save(src / name)
    rc, err = prepare(src, tmp_path / "out", capsys)
    assert rc == 0, err
    rows = assert_consistent(tmp_path / "out")
    labels = {r["source"] for r in rows} - {"good0.png", "good1.png"}
    assert len(labels) == 1
    assert os.fsencode(text_name(labels.pop())) == raw
    assert all(len(Path(r["file"]).name.encode()) < 120 for r in rows)


def test_name_text_round_trips_arbitrary_bytes():
    rng = np.random.default_rng(0)
    for _ in range(200):
        raw = bytes(rng.integers(1, 256, int(rng.integers(1, 40))).tolist()).replace(b"/", b"_")
        name = os.fsdecode(raw)
        assert os.fsencode(text_name(name_text(name))) == raw
        name_text(name).encode("utf-8")  # always writable as UTF-8
    assert name_text("plain name.png") == "plain name.png"


def test_failure_while_writing_changes_no_output(tmp_path, capsys):
    src = good_folder(tmp_path / "photos", n=4)
    out = tmp_path / "out"
    assert prepare(src, out, capsys)[0] == 0
    before = tree_bytes(out)
    # A new photo, then a failure late in the stage (fail mode on a bad file sorted last).
    Image.fromarray(photo(8)).save(src / "new.png")
    (src / "zz_broken.png").write_bytes(b"\x89PNG broken")
    rc, err = prepare(src, out, capsys, on_bad_image="fail")
    assert rc == 1 and "zz_broken.png" in err
    assert tree_bytes(out) == before


def test_replace_together_rolls_back_on_error(tmp_path):
    from reconlab.io import replace_together

    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(b"old image")
    (root / "manifest.csv").write_text("old manifest")
    stage = tmp_path / "root" / "stage"
    (stage / "images").mkdir(parents=True)
    (stage / "images" / "b.png").write_bytes(b"new image")
    # The staged manifest is missing: the second move fails after images/ was already replaced.
    with pytest.raises(FileNotFoundError):
        replace_together(
            [(stage / "images", root / "images"), (stage / "manifest.csv", root / "manifest.csv")]
        )
    assert (root / "manifest.csv").read_text() == "old manifest"
    assert [p.name for p in (root / "images").iterdir()] == ["a.png"]
    assert not (root / ".manifest.csv.old").exists() and not (root / ".images.old").exists()


# --- fault 4: colour profiles -----------------------------------------------------------------


def test_wide_gamut_icc_profile_is_converted_to_srgb_and_recorded(tmp_path, capsys):
    src = good_folder(tmp_path / "photos", n=3)
    Image.new("RGB", (64, 64), (200, 40, 40)).save(src / "adobe.png", icc_profile=wide_gamut_icc())
    rgb, colour = decode(src / "adobe.png")
    want = adobe_to_srgb((200, 40, 40))  # (232.7, 35.2, 35.2) by formula
    assert np.abs(rgb[0, 0].astype(float) - want).max() <= 1.5
    assert tuple(rgb[0, 0]) == (233, 35, 35)
    assert colour == "icc:Wide gamut test profile (Adobe RGB 1998 primaries) -> sRGB"
    assert prepare(src, tmp_path / "out", capsys)[0] == 0
    rows = assert_consistent(tmp_path / "out")
    assert {r["colour"] for r in rows if r["source"] == "adobe.png"} == {colour}
    assert {r["colour"] for r in rows if r["source"] != "adobe.png"} == {""}
    crop = np.asarray(
        Image.open(tmp_path / "out" / next(r["file"] for r in rows if r["source"] == "adobe.png"))
    )
    assert tuple(crop[5, 5]) == (233, 35, 35)


def test_srgb_profile_leaves_pixels_unchanged(tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(photo(3)).save(tmp_path / "srgb.png", icc_profile=srgb)
    rgb, colour = decode(tmp_path / "srgb.png")
    assert np.abs(rgb.astype(int) - photo(3).astype(int)).max() <= 1
    assert colour.endswith("-> sRGB")
