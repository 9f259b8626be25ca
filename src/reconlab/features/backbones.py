"""DINOv2 / DINOv3 backbones from timm, with explicit weights (decision 4).

``weights`` is one of

* ``pretrained`` — timm's hub weights through the Hugging Face cache. When the hub cannot be
  reached and the weights are not cached, loading stops within seconds with one line naming the
  two alternatives (no silent fallback, no ~45 s of hub retries);
* a local file — loaded through timm's ``pretrained_cfg_overlay=dict(file=...)``, so official
  checkpoints go through timm's own conversion (key renames, position-embedding resampling);
  a file of another architecture is refused with the name of the first mismatched tensor;
* ``random`` — timm's initialisation under a fixed seed; everything computed from it is marked
  untrained.

Everything about token layout comes from the model: the number of prefix tokens (CLS, registers)
from ``model.num_prefix_tokens``, the patch grid from ``model.patch_embed`` (so rectangular inputs
work), the normalisation from its pretrained config.
"""

from __future__ import annotations

import difflib
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reconlab.features.images import image_hw
from reconlab.io import sha256_file

HUB_HOST = "huggingface.co"


@dataclass(frozen=True)
class Backbone:
    """A loaded, frozen backbone and everything needed to read its tokens."""

    model: nn.Module
    name: str
    weights: str
    weights_id: str
    image_size: tuple[int, int]
    patch_size: tuple[int, int]
    grid: tuple[int, int]
    embed_dim: int
    num_prefix_tokens: int
    layers: tuple[int, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def untrained(self) -> bool:
        return self.weights_id.startswith("random")


def check_model_name(name: str, key: str = "model") -> None:
    """Raise ValueError suggesting close timm names when ``name`` is not a timm model."""
    import timm

    arch, _ = timm.models.split_model_name_tag(name)
    if timm.is_model(arch):
        return
    candidates = sorted(set(timm.list_models()) | set(timm.list_models(pretrained=True)))
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else " (see timm.list_models())"
    raise ValueError(f"{key}: {name!r} is not a timm model{hint}")


def model_patch_size(name: str) -> tuple[int, int]:
    """Patch size of timm model ``name``, read from a weightless (meta-device) instance."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    return tuple(int(p) for p in model.patch_embed.patch_size)  # type: ignore[return-value]


def hub_reachable(host: str = HUB_HOST, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host``:443 opens within ``timeout`` seconds (DNS included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo ignores socket timeouts
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _cached_hub_file(cfg: dict[str, Any]) -> tuple[str, str] | None:
    """(local path, revision) of the model's hub weights in the Hugging Face cache, if there."""
    from huggingface_hub import try_to_load_from_cache

    repo = cfg.get("hf_hub_id")
    if not repo:
        return None
    for filename in (cfg.get("hf_hub_filename"), "model.safetensors", "pytorch_model.bin"):
        if not filename:
            continue
        # HF_HUB_CACHE read now (not at import), so a cache set up later is found.
        path = try_to_load_from_cache(repo, filename, cache_dir=os.environ.get("HF_HUB_CACHE"))
        if isinstance(path, str):
            revision = Path(path).parent.name  # .../snapshots/<revision>/<file>
            return path, revision
    return None


def _file_state_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape of a weights file (safetensors header, or a torch checkpoint)."""
    if path.suffix == ".safetensors":
        from reconlab.features.cache import read_header

        header, _ = read_header(path)
        return {k: list(v["shape"]) for k, v in header.items()}
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    return {k: list(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


def _first_mismatch(reference: nn.Module, path: Path) -> str | None:
    """The first tensor where the file and ``reference``'s architecture disagree, in words."""
    want = {k: list(v.shape) for k, v in reference.state_dict().items()}
    have = _file_state_shapes(path)
    for name, shape in want.items():
        if name not in have:
            return f"tensor {name!r} {shape} is missing from the file"
    for name in have:
        if name not in want:
            return f"tensor {name!r} in the file is not part of the model"
    for name, shape in want.items():
        if have[name] != shape and name != "pos_embed":  # timm resamples pos_embed itself
            return f"tensor {name!r} is {have[name]} in the file, the model needs {shape}"
    return None


def _create(name: str, image_size: tuple[int, int], **kwargs: Any) -> nn.Module:
    import timm

    return timm.create_model(name, img_size=image_size, num_classes=0, **kwargs)


def create_model(
    name: str,
    weights: str,
    image_size: tuple[int, int],
    seed: int = 0,
    key: str = "backbone",
    **model_kwargs: Any,
) -> tuple[nn.Module, str]:
    """Build timm model ``name`` with ``weights``; return it (eval mode) and its weights identity.

    The identity is ``random:<seed>``, ``sha256:<hex of the file>`` or ``hub:<repo>@<revision>``.
    ``model_kwargs`` go to ``timm.create_model`` (e.g. ``depth=2`` for fast tests).
    """
    check_model_name(name, f"{key}.model")
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _create(name, image_size, pretrained=False, **model_kwargs)
        return model.eval(), f"random:{seed}"
    if weights == "pretrained":
        return _create_pretrained(name, image_size, key, **model_kwargs)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{key}.weights: {weights!r} is neither 'pretrained', 'random' nor an existing file"
        )
    model = _create_from_file(name, path, image_size, key, **model_kwargs)
    return model, f"sha256:{sha256_file(path)}"


def _create_from_file(
    name: str, path: Path, image_size: tuple[int, int], key: str, **model_kwargs: Any
) -> nn.Module:
    overlay = dict(file=str(path))
    try:
        model = _create(
            name, image_size, pretrained=True, pretrained_cfg_overlay=overlay, **model_kwargs
        )
    except Exception as e:  # timm raises RuntimeError, KeyError, shape errors... depending on model
        with torch.device("meta"):  # only the shapes are needed
            reference = _create(name, image_size, pretrained=False, **model_kwargs)
        try:
            why = _first_mismatch(reference, path)
        except Exception:  # an unreadable file: timm's own message says more
            why = None
        why = why or str(e).strip().splitlines()[0]
        raise ValueError(f"{key}.weights: {path} does not fit {name}: {why}") from None
    return model.eval()


def _create_pretrained(
    name: str, image_size: tuple[int, int], key: str, **model_kwargs: Any
) -> tuple[nn.Module, str]:
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    cfg = cfg.to_dict() if cfg is not None else {}
    repo = cfg.get("hf_hub_id") or name
    cached = _cached_hub_file(cfg)
    if cached is not None:  # no network needed: load the cached file through timm's converter
        path, revision = cached
        model = _create_from_file(name, Path(path), image_size, key, **model_kwargs)
        return model, f"hub:{repo}@{revision}"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline or not hub_reachable():
        raise RuntimeError(
            f"{key}.weights: 'pretrained' needs {repo} from {HUB_HOST}, which is unreachable "
            "(or HF_HUB_OFFLINE is set) and "
            "not in the local Hugging Face cache; set weights to a local checkpoint file "
            "(a path) or to 'random' (seeded, marked untrained), e.g. --configfile config/offline.yaml"
        )
    model = _create(name, image_size, pretrained=True, **model_kwargs).eval()
    cached = _cached_hub_file(cfg)
    return model, f"hub:{repo}@{cached[1]}" if cached else f"hub:{repo}"


def patch_grid(
    model: nn.Module, image_size: tuple[int, int], name: str = "", key: str = "image_size"
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(patch size, token grid) for ``image_size``, read from the model's patch embedding.

    Raises:
        ValueError: when ``image_size`` is not a multiple of the patch size, with the nearest
            sizes that are.
    """
    embed = model.patch_embed
    ph, pw = (int(p) for p in embed.patch_size)
    height, width = image_size
    if height % ph or width % pw:

        def near(n: int, p: int) -> int:
            return max(p, round(n / p) * p)

        raise ValueError(
            f"{key}: {height}x{width} is not divisible by the {ph}x{pw} patches of {name}; "
            f"use e.g. [{near(height, ph)}, {near(width, pw)}]"
        )
    if hasattr(embed, "dynamic_feat_size"):
        grid = tuple(int(g) for g in embed.dynamic_feat_size((height, width)))
    else:
        grid = (height // ph, width // pw)
    return (ph, pw), grid  # type: ignore[return-value]


def load_backbone(
    name: str,
    weights: str,
    image_size: int | Sequence[int],
    layers: Sequence[int] = (),
    seed: int = 0,
    key: str = "backbone",
    **model_kwargs: Any,
) -> Backbone:
    """Create timm model ``name`` with ``weights`` for inputs of ``image_size``; see module doc.

    Args:
        name: a timm model name, e.g. ``vit_small_patch14_dinov2.lvd142m``.
        weights: ``pretrained``, a local file path, or ``random``.
        image_size: int or [H, W]; each must be a multiple of the model's patch size.
        layers: intermediate block indices to return as well (negative counts from the end).
        seed: seed of the initialisation for ``random``.
        key: the params key to name in error messages, e.g. ``features.backbones[1]``.
        model_kwargs: passed to ``timm.create_model`` (e.g. ``depth=2`` in tests).
    """
    hw = image_hw(image_size)
    model, weights_id = create_model(name, weights, hw, seed=seed, key=key, **model_kwargs)
    model.requires_grad_(False)
    patch_size, grid = patch_grid(model, hw, name, f"{key}.image_size")
    depth = len(model.blocks)
    resolved = []
    for k in layers:
        if not -depth <= k < depth:
            raise ValueError(f"{key}.layers: {k} is out of range for {name} ({depth} blocks)")
        resolved.append(k % depth)
    cfg = model.pretrained_cfg
    return Backbone(
        model=model,
        name=name,
        weights=str(weights),
        weights_id=weights_id,
        image_size=hw,
        patch_size=patch_size,
        grid=grid,
        embed_dim=int(model.embed_dim),
        num_prefix_tokens=int(model.num_prefix_tokens),
        layers=tuple(resolved),
        mean=tuple(float(m) for m in cfg.get("mean", (0.485, 0.456, 0.406))),  # type: ignore[arg-type]
        std=tuple(float(s) for s in cfg.get("std", (0.229, 0.224, 0.225))),  # type: ignore[arg-type]
    )
