"""The feature cache format: writer, reader, verification, memory mapping, image loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reconlab.features.cache import (
    FeatureCache,
    mmap_tensors,
    shard_name,
    tensor_layout,
    write_index,
    write_shard,
)
from reconlab.features.images import load_image_tensor


def make_cache(root, dtype="bf16", counts=(3, 2), layers=(2,), grid=(2, 3), dim=4):
    """A tiny real cache: one split 'train' with shards of ``counts`` images."""
    torch.manual_seed(0)
    h, w = grid
    shards, files, full = [], [], {}
    for k, n in enumerate(counts):
        tensors = {"cls": torch.randn(n, dim), "patch": torch.randn(n, h, w, dim)}
        for layer in layers:
            tensors[f"patch_layer{layer}"] = torch.randn(n, h, w, dim)
        tensors = {
            name: t.to(
                getattr(torch, {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[dtype])
            )
            for name, t in tensors.items()
        }
        for name, t in tensors.items():
            full.setdefault(name, []).append(t)
        shards.append(write_shard(root / "train" / shard_name(k), tensors))
        files += [f"images/train/img{k}_{i}.png" for i in range(n)]
    index = {
        "backbone_id": "tiny",
        "model": "vit_tiny",
        "weights": "random",
        "weights_id": "random:0",
        "untrained": True,
        "dtype": dtype,
        "image_size": [h * 14, w * 14],
        "patch_size": 14,
        "grid": [h, w],
        "embed_dim": dim,
        "num_prefix_tokens": 1,
        "layers": list(layers),
        "splits": {"train": {"count": sum(counts), "files": files, "shards": shards}},
    }
    write_index(root, index)
    return {name: torch.cat(ts) for name, ts in full.items()}


@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp32"])
def test_round_trip_shapes_values_and_dtype(tmp_path, dtype):
    full = make_cache(tmp_path, dtype=dtype)
    cache = FeatureCache.open(
        tmp_path, expect={"dtype": dtype, "grid": (2, 3), "model": "vit_tiny"}
    )
    assert cache.untrained and cache.weights_id == "random:0"
    s = cache.split("train")
    assert len(s) == 5 and s.files[3] == "images/train/img1_0.png"
    assert s.patch.shape == (5, 2, 3, 4) and s.cls.shape == (5, 4)
    assert s.patch.dtype == full["patch"].dtype
    assert torch.equal(s.patch, full["patch"])
    assert torch.equal(s.cls, full["cls"])
    assert torch.equal(s.tensor("patch_layer2"), full["patch_layer2"])
    assert [t.shape[0] for t in s.shard_tensors("patch")] == [3, 2]


def _mapping_of(t: torch.Tensor) -> str:
    """The /proc/self/maps line of the memory region holding ``t``'s data (Linux)."""
    address = t.data_ptr()
    for line in open("/proc/self/maps"):
        start, end = (int(a, 16) for a in line.split()[0].split("-"))
        if start <= address < end:
            return line
    raise AssertionError("no mapping holds the tensor")


def test_single_shard_is_memory_mapped_not_copied(tmp_path):
    make_cache(tmp_path, counts=(4,))
    path = tmp_path / "train" / shard_name(0)
    t = mmap_tensors(path, ["patch"])["patch"]
    # Copy-on-write mapping of the file: editing the tensor never touches the file.
    before = path.read_bytes()
    t.zero_()
    assert path.read_bytes() == before
    s = FeatureCache.open(tmp_path).split("train")
    # a view into a private (copy-on-write) mapping of the shard file, not a fresh copy
    fields = _mapping_of(s.patch).split()
    assert fields[-1] == str(path) and fields[1].endswith("p")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_safetensors_layout_and_values_are_those_written(tmp_path, dtype):
    path = tmp_path / "s.safetensors"
    g = torch.Generator().manual_seed(0)
    written = {"cls": torch.randn(3, 4, generator=g), "patch": torch.randn(3, 2, 5, 4, generator=g)}
    written = {k: v.to(dtype) for k, v in written.items()}
    write_shard(path, written)
    code = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}[dtype]
    assert tensor_layout(path) == {"cls": (code, (3, 4)), "patch": (code, (3, 2, 5, 4))}
    read = mmap_tensors(path)
    assert list(read) == ["cls", "patch"]
    assert all(read[k].dtype == dtype and torch.equal(read[k], v) for k, v in written.items())
    path.write_bytes(path.read_bytes()[:6])  # shorter than the 8-byte header length
    with pytest.raises(ValueError, match=rf"^{path}: unreadable safetensors file \("):
        tensor_layout(path)


def test_expect_mismatch_names_file_and_key(tmp_path):
    make_cache(tmp_path)
    with pytest.raises(ValueError, match=r"index.json: dtype is 'bf16', expected 'fp32'"):
        FeatureCache.open(tmp_path, expect={"dtype": "fp32"})
    with pytest.raises(ValueError, match=r"key 'nonsense' missing"):
        FeatureCache.open(tmp_path, expect={"nonsense": 1})
    with pytest.raises(FileNotFoundError, match="no feature cache index"):
        FeatureCache.open(tmp_path / "nowhere")


def test_corrupted_shard_is_refused_naming_it(tmp_path):
    make_cache(tmp_path)
    path = tmp_path / "train" / shard_name(1)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, one flipped byte in the tensor data
    path.write_bytes(bytes(data))
    s = FeatureCache.open(tmp_path).split("train")
    with pytest.raises(
        ValueError, match=r"shard_00001.safetensors: corrupt feature shard \(sha256"
    ):
        _ = s.patch
    path.write_bytes(bytes(data[:100]))  # truncated
    with pytest.raises(ValueError, match=r"shard_00001.safetensors: corrupt feature shard \(size"):
        FeatureCache.open(tmp_path).split("train").verify()


def test_shape_mismatch_is_named(tmp_path):
    make_cache(tmp_path)
    entry = write_shard(
        tmp_path / "train" / shard_name(1),
        {
            "cls": torch.zeros(2, 4, dtype=torch.bfloat16),
            "patch": torch.zeros(2, 3, 2, 4, dtype=torch.bfloat16),
            "patch_layer2": torch.zeros(2, 2, 3, 4, dtype=torch.bfloat16),
        },
    )
    import json

    index = json.loads((tmp_path / "index.json").read_text())
    index["splits"]["train"]["shards"][1] = entry  # checksum right, shape wrong
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(
        ValueError, match=r"tensor 'patch' is BF16\[2, 3, 2, 4\], index says BF16\[2, 2, 3, 4\]"
    ):
        FeatureCache.open(tmp_path).split("train").verify()


def test_unknown_tensor_and_split(tmp_path):
    make_cache(tmp_path)
    cache = FeatureCache.open(tmp_path)
    with pytest.raises(KeyError, match="no split 'val'"):
        cache.split("val")
    with pytest.raises(KeyError, match="patch_layer7"):
        cache.split("train").tensor("patch_layer7")


def test_load_image_tensor_identity_and_resize_crop(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    same = load_image_tensor(tmp_path / "a.png", [40, 60])
    assert same.shape == (3, 40, 60) and same.dtype == torch.float32
    assert torch.equal(same, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    square = load_image_tensor(tmp_path / "a.png", 28)  # cover 28x28, centre crop
    assert square.shape == (3, 28, 28) and 0 <= square.min() and square.max() <= 1
    wide = load_image_tensor(tmp_path / "a.png", (20, 60))  # crop rows only, no resize
    assert torch.equal(wide, same[:, 10:30, :])


def test_reading_one_row_does_not_load_the_shard(tmp_path):
    import psutil

    path = tmp_path / "big.safetensors"
    write_shard(path, {"cls": torch.ones(200, 384), "patch": torch.ones(200, 16, 16, 384)})
    proc = psutil.Process()
    before = proc.memory_info().rss
    patch = mmap_tensors(path, ["patch"])["patch"]
    assert patch[7].sum().item() == 16 * 16 * 384
    grown = proc.memory_info().rss - before
    assert grown < path.stat().st_size / 4, f"RSS grew {grown / 1e6:.1f} MB for one row"


def test_provenance_and_fingerprint_describe_the_cache(tmp_path):
    make_cache(tmp_path, counts=(3, 2))
    cache = FeatureCache.open(tmp_path)
    assert cache.provenance() == {
        "backbone_id": "tiny",
        "model": "vit_tiny",
        "weights": "random:0",  # the weights identity, as every metrics file records it
        "untrained": True,
        "image_size": [28, 42],
        "patch_size": 14,
        "grid": [2, 3],
    }
    fp = cache.fingerprint()
    assert fp["weights"] == "random" and fp["weights_id"] == "random:0"
    assert fp["dtype"] == "bf16" and len(fp["shards"]["train"]) == 2
    assert all(len(h) == 64 for h in fp["shards"]["train"])
    # a recomputed shard (other bytes) gives another fingerprint: a trained decoder refuses it
    make_cache(tmp_path, counts=(2, 3))
    assert FeatureCache.open(tmp_path).fingerprint()["shards"] != fp["shards"]
