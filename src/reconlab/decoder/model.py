"""Decoders from a patch-feature grid to RGB, picked by name from a plain registry.

Every decoder maps features ``(B, C, h, w)`` to an image ``(B, 3, h * p, w * p)`` in [0, 1],
where ``p`` is the backbone's patch size (14 for DINOv2, 16 for DINOv3), and returns a
:class:`DecoderOutput`. Add a variant by decorating its class with ``@register_decoder("name")``;
the tests parametrize over :data:`DECODERS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class DecoderOutput(NamedTuple):
    rgb: torch.Tensor  # (B, 3, H, W) in [0, 1]
    logits: torch.Tensor  # (B, 3, H, W) before the sigmoid (for losses that want them)


DECODERS: dict[str, type[nn.Module]] = {}

NORMS = ("group", "batch", "none")
UPSAMPLE_MODES = ("nearest", "bilinear", "pixelshuffle")


def register_decoder(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a decoder available to :func:`create_decoder` under ``name``."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in DECODERS:
            raise ValueError(f"decoder {name!r} is registered twice")
        DECODERS[name] = cls
        return cls

    return add


def create_decoder(name: str, in_channels: int, patch_size: int, **kwargs) -> nn.Module:
    """Build the decoder registered as ``name`` (``decoder.arch`` in params.yaml)."""
    try:
        cls = DECODERS[name]
    except KeyError:
        raise ValueError(f"decoder.arch: {name!r} is not one of {sorted(DECODERS)}") from None
    return cls(in_channels=in_channels, patch_size=patch_size, **kwargs)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"decoder.norm: {kind!r} is not one of {list(NORMS)}")


class ConvBlock(nn.Sequential):
    """3x3 conv -> norm -> GELU."""

    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=norm == "none"),
            _norm(norm, c_out),
            nn.GELU(),
        )


class Upsample2x(nn.Module):
    """Double the spatial size: interpolation, or a conv to 4C channels + pixel shuffle."""

    def __init__(self, channels: int, mode: str):
        super().__init__()
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"decoder.upsample: {mode!r} is not one of {list(UPSAMPLE_MODES)}")
        self.mode = mode
        if mode == "pixelshuffle":
            self.proj = nn.Conv2d(channels, 4 * channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "pixelshuffle":
            return F.pixel_shuffle(self.proj(x), 2)
        align = False if self.mode == "bilinear" else None
        return F.interpolate(x, scale_factor=2, mode=self.mode, align_corners=align)


@register_decoder("tiny")
class TinyDecoder(nn.Module):
    """A compact CNN: 1x1 projection, then ×2 upsampling stages of ``depth`` 3x3 conv blocks.

    ``ceil(log2(p))`` stages reach at least the patch size (16 for p=16, 16 for p=14); when
    ``2**stages != p`` (DINOv2's p=14) the last feature map is resized to exactly ``h*p × w*p``
    before the RGB head, so the output always matches the backbone's input resolution.
    The width halves at every stage (never below ``min_width``), which keeps the cost of the
    high-resolution stages small.
    """

    def __init__(
        self,
        in_channels: int,
        patch_size: int,
        width: int = 128,  # channels at the patch-grid resolution
        depth: int = 2,  # conv blocks per stage
        norm: str = "group",  # group | batch | none
        upsample: str = "nearest",  # nearest | bilinear | pixelshuffle
        min_width: int = 16,  # floor for the halving widths of the high-resolution stages
    ):
        super().__init__()
        if patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {patch_size}")
        self.patch_size = patch_size
        stages = max(0, math.ceil(math.log2(patch_size)))
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 1), ConvBlock(width, width, norm))
        blocks: list[nn.Module] = []
        c = width
        for _ in range(stages):
            c_out = max(min_width, c // 2)
            blocks.append(Upsample2x(c, upsample))
            blocks.append(ConvBlock(c, c_out, norm))
            blocks.extend(ConvBlock(c_out, c_out, norm) for _ in range(depth - 1))
            c = c_out
        self.body = nn.Sequential(*blocks)
        self.head = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, features: torch.Tensor) -> DecoderOutput:
        """features (B, C, h, w) -> DecoderOutput(rgb (B, 3, h*p, w*p) in [0, 1], logits)."""
        h, w = features.shape[-2:]
        x = self.body(self.stem(features))
        size = (h * self.patch_size, w * self.patch_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        logits = self.head(x)
        return DecoderOutput(torch.sigmoid(logits), logits)


@register_decoder("linear")
class LinearPatchDecoder(nn.Module):
    """The linear-probe control: each patch token is mapped by one linear layer to its p×p×3 pixels.

    No spatial context at all, so the gap to :class:`TinyDecoder` shows what the convs add.
    Extra keyword arguments of the tiny decoder (width, depth, ...) are accepted and ignored.
    """

    def __init__(self, in_channels: int, patch_size: int, **_ignored):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, 3 * patch_size * patch_size, 1)

    def forward(self, features: torch.Tensor) -> DecoderOutput:
        """features (B, C, h, w) -> DecoderOutput(rgb (B, 3, h*p, w*p) in [0, 1], logits)."""
        p = self.patch_size
        logits = rearrange(self.proj(features), "b (c p1 p2) h w -> b c (h p1) (w p2)", p1=p, p2=p)
        return DecoderOutput(torch.sigmoid(logits), logits)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
