"""The on-disk feature cache: safetensors shards plus one ``index.json`` (decision 5).

Layout of one backbone's cache (``data/features/{backbone_id}/``)::

    index.json                              what, from which weights, how, and the shard checksums
    {split}/shard_{k:05d}.safetensors       cls (n, D), patch (n, h, w, D), patch_layer{k} (n, h, w, D)

Readers never trust a shard blindly: on first access each shard's size, tensor names, dtypes,
shapes and sha256 are checked against the index, and a mismatch raises ValueError naming the shard.
Tensors are memory-mapped by safetensors (``safe_open``), so opening a cache larger than RAM
costs only what is actually read.

Typical use::

    cache = FeatureCache.open(Path("data/features/dinov2_s14"), expect={"dtype": "bf16"})
    train = cache.split("train")
    patch = train.patch                     # (N, h, w, D), memory-mapped
    target = load_image_tensor(Path("data/prepared") / train.files[0], cache.index["image_size"])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from reconlab.io import atomic_path, read_json, sha256_file, write_json

INDEX_NAME = "index.json"
SPLITS = ("train", "val", "test")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
_SAFETENSORS_DTYPES = {"bf16": "BF16", "fp16": "F16", "fp32": "F32"}
INDEX_KEYS = (
    "backbone_id",
    "model",
    "weights",
    "weights_id",
    "untrained",
    "dtype",
    "image_size",
    "patch_size",
    "grid",
    "embed_dim",
    "num_prefix_tokens",
    "layers",
    "splits",
)


def shard_name(k: int) -> str:
    return f"shard_{k:05d}.safetensors"


def tensor_names(layers: Sequence[int]) -> list[str]:
    """Names stored in every shard: ``cls``, ``patch`` and one ``patch_layer{k}`` per layer."""
    return ["cls", "patch", *(f"patch_layer{k}" for k in layers)]


def expected_shapes(index: Mapping[str, Any], count: int) -> dict[str, tuple[int, ...]]:
    """Shape of each tensor of a shard holding ``count`` images, as the index describes it."""
    h, w = index["grid"]
    dim = index["embed_dim"]
    shapes = {name: (count, h, w, dim) for name in tensor_names(index["layers"])}
    shapes["cls"] = (count, dim)
    return shapes


def tensor_layout(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (safetensors dtype code such as ``"BF16"``, shape) of every tensor in ``path``,
    read from its header by safetensors itself (``safe_open`` + ``get_slice``; no data read).

    Raises:
        ValueError: naming the file, when safetensors cannot parse it (truncated, not one).
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            slices = {name: f.get_slice(name) for name in f.keys()}  # noqa: SIM118 - not a dict
            return {n: (s.get_dtype(), tuple(s.get_shape())) for n, s in slices.items()}
    except SafetensorError as e:
        raise ValueError(f"{path}: unreadable safetensors file ({e})") from None


def write_shard(path: Path, tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Write one shard atomically and return its index entry ``{file, count, sha256, bytes}``.

    The file appears under its final name only once complete, and the checksum is taken from the
    bytes on disk, so a shard killed mid-write can never look valid.
    """
    path = Path(path)
    counts = {t.shape[0] for t in tensors.values()}
    if len(counts) != 1:
        raise ValueError(f"{path}: tensors disagree on the number of images ({sorted(counts)})")
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        digest, nbytes = sha256_file(tmp), tmp.stat().st_size
    return {"file": path.name, "count": counts.pop(), "sha256": digest, "bytes": nbytes}


def shard_problem(
    path: Path, entry: Mapping[str, Any], index: Mapping[str, Any], checksum: bool = True
) -> str | None:
    """Why the shard at ``path`` does not match its index ``entry`` (None when it does)."""
    if not path.is_file():
        return "missing"
    if "bytes" in entry and path.stat().st_size != entry["bytes"]:
        return f"size {path.stat().st_size} bytes, index says {entry['bytes']}"
    try:
        layout = tensor_layout(path)
    except ValueError as e:
        return str(e).split(": ", 1)[-1]
    want_dtype = _SAFETENSORS_DTYPES[index["dtype"]]
    for name, shape in expected_shapes(index, entry["count"]).items():
        if name not in layout:
            return f"tensor {name!r} missing"
        dtype, got = layout[name]
        if got != shape or dtype != want_dtype:
            return f"tensor {name!r} is {dtype}{list(got)}, index says {want_dtype}{list(shape)}"
    if checksum and sha256_file(path) != entry["sha256"]:
        return "sha256 does not match the index"
    return None


def mmap_tensors(path: Path, names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Tensors ``names`` (default all, sorted) of a safetensors file, memory-mapped.

    safetensors maps the file privately (copy-on-write), so nothing is read until used and
    writing to a tensor never touches the file; measured against the hand-built mapping this
    replaced: the same values, the same few MB of RSS after reading one row of a 50 MB shard.
    """
    with safe_open(str(path), framework="pt") as f:
        return {
            name: f.get_tensor(name) for name in (names if names is not None else sorted(f.keys()))
        }


class FeatureSplit:
    """One split of a cache: ``len(s)``, ``s.files``, ``s.tensor(name)`` (memory-mapped)."""

    def __init__(self, cache: FeatureCache, name: str):
        info = cache.index["splits"][name]
        self.cache, self.name = cache, name
        self.root = cache.root / name
        self.files: list[str] = list(info["files"])
        self.shards: list[dict[str, Any]] = list(info["shards"])
        self._verified: set[str] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"FeatureSplit({self.cache.index['backbone_id']!r}, {self.name!r}, n={len(self)})"

    @property
    def names(self) -> list[str]:
        return tensor_names(self.cache.index["layers"])

    def verify(self) -> None:
        """Check every shard now (size, tensor shapes, sha256); raise ValueError naming a bad one."""
        for entry in self.shards:
            self._shard_path(entry)

    def _shard_path(self, entry: Mapping[str, Any]) -> Path:
        path = self.root / entry["file"]
        if entry["file"] not in self._verified:
            problem = shard_problem(path, entry, self.cache.index)
            if problem:
                raise ValueError(f"{path}: corrupt feature shard ({problem}); rerun cache-features")
            self._verified.add(entry["file"])
        return path

    def shard_tensors(self, name: str) -> Iterator[torch.Tensor]:
        """Tensor ``name`` shard by shard (each memory-mapped): for passes with bounded memory."""
        self._check_name(name)
        for entry in self.shards:
            yield mmap_tensors(self._shard_path(entry), [name])[name]

    def tensor(self, name: str) -> torch.Tensor:
        """(N, ...) tensor ``name`` (``cls``, ``patch`` or ``patch_layer{k}``) over the split.

        A split stored as one shard is returned memory-mapped without a copy; several shards
        are concatenated (a copy of this one tensor). Use :meth:`shard_tensors` to stream.
        """
        self._check_name(name)
        parts = list(self.shard_tensors(name))
        if not parts:
            shape = expected_shapes(self.cache.index, 0)[name]
            return torch.empty(shape, dtype=DTYPES[self.cache.index["dtype"]])
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    @property
    def patch(self) -> torch.Tensor:
        return self.tensor("patch")

    @property
    def cls(self) -> torch.Tensor:
        return self.tensor("cls")

    def _check_name(self, name: str) -> None:
        if name not in self.names:
            raise KeyError(f"{self.cache.index_path}: no tensor {name!r}; cached: {self.names}")


class FeatureCache:
    """A verified, read-only view of one backbone's cache (see the module docstring)."""

    def __init__(self, root: Path, index: dict[str, Any]):
        self.root = Path(root)
        self.index = index

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    @classmethod
    def open(cls, root: Path, expect: Mapping[str, Any] | None = None) -> FeatureCache:
        """Read and check ``root/index.json``; ``expect`` values must match the index exactly.

        Raises:
            FileNotFoundError: no index (the cache was never completed).
            ValueError: a missing key, inconsistent counts, or a mismatch with ``expect``,
                naming the file and the key.
        """
        path = Path(root) / INDEX_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no feature cache index (run cache-features first)")
        index = read_json(path)
        check_index(index, path)
        for key, want in (expect or {}).items():
            if key not in index:
                raise ValueError(f"{path}: key {key!r} missing (expected {want!r})")
            if _plain(index[key]) != _plain(want):
                raise ValueError(f"{path}: {key} is {index[key]!r}, expected {want!r}")
        return cls(Path(root), index)

    @property
    def untrained(self) -> bool:
        return bool(self.index["untrained"])

    @property
    def weights_id(self) -> str:
        return str(self.index["weights_id"])

    def provenance(self) -> dict[str, Any]:
        """What every result computed from this cache records about it (metrics.json keys).

        ``backbone_id``, timm ``model``, ``weights`` (the weights identity: ``"random:<seed>"``,
        a sha256 or ``"hub:..."``), ``untrained``, ``image_size`` and ``grid`` ([h, w]) and
        ``patch_size`` (px).
        """
        i = self.index
        return {
            "backbone_id": i["backbone_id"],
            "model": i["model"],
            "weights": self.weights_id,
            "untrained": self.untrained,
            "image_size": list(i["image_size"]),
            "patch_size": i["patch_size"],
            "grid": list(i["grid"]),
        }

    def fingerprint(self) -> dict[str, Any]:
        """What a model trained on this cache depends on: :meth:`provenance` with ``weights``
        as the policy (``pretrained`` / a file / ``random``) beside ``weights_id``, the
        ``dtype`` and every shard's sha256 by split. A trained decoder saves it and refuses to
        be evaluated on a cache with another one."""
        i = self.index
        return {
            **self.provenance(),
            "weights": i["weights"],
            "weights_id": self.weights_id,
            "dtype": i["dtype"],
            "shards": {s: [e["sha256"] for e in v["shards"]] for s, v in i["splits"].items()},
        }

    @property
    def splits(self) -> list[str]:
        return list(self.index["splits"])

    def split(self, name: str) -> FeatureSplit:
        if name not in self.index["splits"]:
            raise KeyError(f"{self.index_path}: no split {name!r}; cached: {self.splits}")
        return FeatureSplit(self, name)

    def __repr__(self) -> str:
        i = self.index
        return f"FeatureCache({i['backbone_id']!r}, {i['model']!r}, {i['weights_id']!r})"


def _plain(value: Any) -> Any:
    """Tuples as lists, so ``(224, 224)`` matches the JSON ``[224, 224]``."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def check_index(index: Any, path: Path | str = INDEX_NAME) -> None:
    """Raise ValueError naming ``path`` and the key when ``index`` is not a well-formed index."""
    if not isinstance(index, dict):
        raise ValueError(f"{path}: not a feature cache index (a JSON object is expected)")
    for key in INDEX_KEYS:
        if key not in index:
            raise ValueError(f"{path}: key {key!r} missing")
    if index["dtype"] not in DTYPES:
        raise ValueError(f"{path}: dtype {index['dtype']!r} is not one of {sorted(DTYPES)}")
    for name, info in index["splits"].items():
        counts = [s["count"] for s in info["shards"]]
        if sum(counts) != info["count"] or len(info["files"]) != info["count"]:
            raise ValueError(
                f"{path}: splits.{name}: count {info['count']}, {len(info['files'])} files, "
                f"shards hold {sum(counts)}"
            )


def write_index(root: Path, index: dict[str, Any]) -> None:
    """Check and write ``root/index.json`` atomically."""
    check_index(index, Path(root) / INDEX_NAME)
    write_json(Path(root) / INDEX_NAME, index)
