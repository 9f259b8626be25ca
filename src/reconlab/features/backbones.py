"""DINOv2 / DINOv3 backbones from timm, with explicit weights (decision 4).

``weights`` is ``pretrained`` (timm's hub weights through the Hugging Face cache), a local file
(through timm's converter) or ``random`` (seeded, marked untrained): the one policy of
:mod:`reconlab.weights`, which also fails within seconds, in one line, when ``pretrained`` cannot
be had.

Everything about token layout comes from the model: the number of prefix tokens (CLS, registers)
from ``model.num_prefix_tokens``, the patch grid from ``model.patch_embed`` (so rectangular inputs
work), the normalisation from its pretrained config.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reconlab.features.images import image_hw
from reconlab.weights import create_timm_model, is_untrained


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
        return is_untrained(self.weights_id)


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


def create_model(
    name: str,
    weights: str,
    image_size: tuple[int, int],
    seed: int = 0,
    key: str = "backbone",
    **model_kwargs: Any,
) -> tuple[nn.Module, str]:
    """Build timm model ``name`` with ``weights``; return it (eval mode) and its weights identity.

    The identity is ``random:<seed>``, ``sha256:<hex of the file>`` or ``hub:<repo>@<revision>``
    (see :mod:`reconlab.weights`). ``model_kwargs`` go to ``timm.create_model``.
    """
    check_model_name(name, f"{key}.model")
    return create_timm_model(
        name, weights, f"{key}.weights", seed, img_size=image_size, num_classes=0, **model_kwargs
    )


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
