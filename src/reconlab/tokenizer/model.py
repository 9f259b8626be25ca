"""VQ tokenizer: conv encoder (downsampling f) -> quantizer -> learned conv decoder.

Variants are named like the ViTok tables:

* ``f8x16-K1024`` — downsampling 8, 16-dim latent, vector quantizer with 1024 codes;
* ``f8-FSQ8.5.5.5`` — downsampling 8, FSQ with levels (8, 5, 5, 5) = 1000 implicit codes.

No layer mixes information across the whole image (no GroupNorm, no attention), so tiled
encode/decode with enough overlap reproduces the untiled result (see ``tiling.py``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from reconlab.tokenizer.quantizers import VQ, FSQQuantizer, QuantizerOutput

FACTORS = (4, 8, 16)
_VQ_NAME = re.compile(r"^f(\d+)x(\d+)-K(\d+)$")
_FSQ_NAME = re.compile(r"^f(\d+)-FSQ(\d+(?:\.\d+)+)$")

# Variants the tests build; params may name any variant the grammar accepts.
REGISTERED_VARIANTS = ("f4x8-K256", "f8x16-K1024", "f16x32-K1024", "f8-FSQ8.5.5.5")


@dataclass(frozen=True)
class VariantSpec:
    """A parsed variant name."""

    name: str
    factor: int  # spatial downsampling per side
    latent_dim: int  # channels of the encoder output
    codebook_size: int
    quantizer: str  # "vq" | "fsq"
    levels: tuple[int, ...] = ()

    @property
    def bits_per_token(self) -> float:
        return math.log2(self.codebook_size)

    def bpp(self, height: int, width: int) -> float:
        """Bits per pixel: tokens x log2(K) / pixels (no entropy coding)."""
        tokens = math.ceil(height / self.factor) * math.ceil(width / self.factor)
        return tokens * self.bits_per_token / (height * width)


def parse_variant(name: str) -> VariantSpec:
    """``f8x16-K1024`` or ``f8-FSQ8.5.5.5`` -> :class:`VariantSpec` (ValueError otherwise)."""
    hint = "expected f{4,8,16}x<dim>-K<codebook size> (e.g. f8x16-K1024) or f8-FSQ8.5.5.5"
    if m := _VQ_NAME.match(name):
        factor, dim, size = (int(g) for g in m.groups())
        spec = VariantSpec(name, factor, dim, size, "vq")
        if size < 2:
            raise ValueError(f"tokenizer.variants: {name!r}: codebook size must be >= 2")
    elif m := _FSQ_NAME.match(name):
        factor = int(m.group(1))
        levels = tuple(int(v) for v in m.group(2).split("."))
        if any(v < 3 for v in levels):
            raise ValueError(f"tokenizer.variants: {name!r}: FSQ levels must be >= 3")
        spec = VariantSpec(name, factor, len(levels), math.prod(levels), "fsq", levels)
    else:
        raise ValueError(f"tokenizer.variants: {name!r} is not a variant name; {hint}")
    if spec.factor not in FACTORS:
        raise ValueError(f"tokenizer.variants: {name!r}: factor must be one of {FACTORS}")
    if spec.latent_dim < 1:
        raise ValueError(f"tokenizer.variants: {name!r}: latent dim must be >= 1")
    return spec


class ResBlock(nn.Module):
    """conv3x3 -> SiLU -> conv3x3 plus the input (no normalisation: keeps tiling exact)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        nn.init.zeros_(self.body[-1].weight)  # starts as identity: stable without normalisation
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def level_channels(factor: int, base: int, maximum: int) -> list[int]:
    """Channels at each scale, full resolution first: base, 2*base, ... capped at ``maximum``."""
    return [min(base * 2**i, maximum) for i in range(int(math.log2(factor)) + 1)]


class Encoder(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, latent_dim, H/f, W/f)."""

    def __init__(self, factor: int, latent_dim: int, base: int = 32, maximum: int = 128) -> None:
        super().__init__()
        ch = level_channels(factor, base, maximum)
        layers: list[nn.Module] = [nn.Conv2d(3, ch[0], 3, padding=1)]
        for c_in, c_out in zip(ch[:-1], ch[1:], strict=True):
            layers += [nn.SiLU(), nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), ResBlock(c_out)]
        layers += [nn.SiLU(), nn.Conv2d(ch[-1], latent_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


class Decoder(nn.Module):
    """(B, latent_dim, h, w) -> (B, 3, h*f, w*f); nearest upsampling + conv, no full-res block."""

    def __init__(self, factor: int, latent_dim: int, base: int = 32, maximum: int = 128) -> None:
        super().__init__()
        ch = level_channels(factor, base, maximum)[::-1]
        layers: list[nn.Module] = [nn.Conv2d(latent_dim, ch[0], 3, padding=1), ResBlock(ch[0])]
        for c_in, c_out in zip(ch[:-1], ch[1:], strict=True):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c_in, c_out, 3, padding=1),
            ]
            if c_out != ch[-1]:  # a residual block at every scale but the (costly) full one
                layers.append(ResBlock(c_out))
        layers += [nn.SiLU(), nn.Conv2d(ch[-1], 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.net(z) + 1) / 2


class TokenizerOutput(NamedTuple):
    """recon (B, 3, H, W) unclamped; indices (B, H/f, W/f); commitment, orthogonal: scalars."""

    recon: torch.Tensor
    indices: torch.Tensor
    commitment: torch.Tensor
    orthogonal: torch.Tensor


@dataclass(frozen=True)
class QuantizerOptions:
    """Options of the vector quantizer (the ``tokenizer.quantizer`` params section)."""

    codebook_dim: int | None = 8
    cosine: bool = True
    decay: float = 0.8
    kmeans_init: bool = True
    kmeans_iters: int = 10
    threshold_ema_dead_code: float = 2.0
    rotation_trick: bool = True


class Tokenizer(nn.Module):
    """Image -> tokens -> image. Forward: x (B, 3, H, W) in [0, 1], H and W multiples of f."""

    def __init__(
        self,
        spec: VariantSpec,
        base_channels: int = 32,
        max_channels: int = 128,
        quantizer: QuantizerOptions = QuantizerOptions(),
        orthogonal: bool = False,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.encoder = Encoder(spec.factor, spec.latent_dim, base_channels, max_channels)
        self.decoder = Decoder(spec.factor, spec.latent_dim, base_channels, max_channels)
        if spec.quantizer == "fsq":
            self.quantizer: VQ | FSQQuantizer = FSQQuantizer(spec.latent_dim, spec.levels)
        else:
            q = quantizer
            codebook_dim = (
                q.codebook_dim if q.codebook_dim and q.codebook_dim < spec.latent_dim else None
            )
            self.quantizer = VQ(
                spec.latent_dim,
                spec.codebook_size,
                codebook_dim=codebook_dim,
                cosine=q.cosine,
                decay=q.decay,
                kmeans_init=q.kmeans_init,
                kmeans_iters=q.kmeans_iters,
                threshold_ema_dead_code=q.threshold_ema_dead_code,
                orthogonal=orthogonal,
                rotation_trick=q.rotation_trick,
            )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) -> continuous latents (B, D, H/f, W/f)."""
        return self.encoder(x)

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        return self.quantizer(z)

    def decode(self, quantized: torch.Tensor) -> torch.Tensor:
        """quantized codes (B, D, h, w) -> image (B, 3, h*f, w*f), unclamped."""
        return self.decoder(quantized.to(next(self.decoder.parameters()).dtype))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """token ids (B, h, w) -> image (B, 3, h*f, w*f)."""
        return self.decode(self.quantizer.codes(indices))

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) -> token ids (B, H/f, W/f)."""
        return self.quantize(self.encode(x)).indices

    def forward(self, x: torch.Tensor) -> TokenizerOutput:
        f = self.spec.factor
        if x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(
                f"tokenizer: image size {tuple(x.shape[-2:])} is not a multiple of f={f}"
            )
        q = self.quantize(self.encode(x))
        return TokenizerOutput(self.decode(q.quantized), q.indices, q.commitment, q.orthogonal)


def build_tokenizer(
    name: str,
    base_channels: int = 32,
    max_channels: int = 128,
    quantizer: QuantizerOptions = QuantizerOptions(),
    orthogonal: bool = False,
) -> Tokenizer:
    """Factory: a variant name -> an untrained :class:`Tokenizer`."""
    return Tokenizer(parse_variant(name), base_channels, max_channels, quantizer, orthogonal)
