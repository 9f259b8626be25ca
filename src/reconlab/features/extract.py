"""From image batches to CLS and patch tokens, fast: inference mode, bf16, optional compile.

The extractor takes uint8 (B, 3, H, W) batches (what :class:`ImageDataset` yields; normalising on
the device is cheaper than shipping floats), applies the backbone's own mean/std, and splits the
token sequence by the model's ``num_prefix_tokens`` and patch grid — never by guessing.

Precision ``bf16`` / ``fp16`` runs a copy of the model whose weights and activations are in that
dtype (LayerNorm, softmax and matmuls accumulate in fp32 inside the kernels). On CPU this was
measured faster than ``torch.autocast``, which re-casts every weight and activation at every
call (a third of the run time for ViT-S); see ``benchmarks/feature_cache.py`` for speed and the
per-token cosine against fp32. ``fp16`` on CPU falls back to bf16 (no fast fp16 CPU kernels).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from reconlab.data.decode import decode_image
from reconlab.features.backbones import Backbone
from reconlab.features.fastpath import fold_layer_scale, prepack_linears
from reconlab.features.images import fit_image
from reconlab.runtime import precision_for


class Features(NamedTuple):
    """Tokens of one batch: cls (B, D), patch (B, h, w, D), layers {k: (B, h, w, D)}."""

    cls: torch.Tensor
    patch: torch.Tensor
    layers: dict[int, torch.Tensor]


class ImageDataset(Dataset):
    """uint8 (3, H, W) tensors of ``files`` fitted to ``image_size`` like ``load_image_tensor``."""

    def __init__(self, files: Sequence[Path], image_size: tuple[int, int]):
        self.files = list(files)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        rgb = fit_image(decode_image(self.files[i]), self.image_size)
        return torch.tensor(rgb).permute(2, 0, 1)


def split_tokens(
    tokens: torch.Tensor, num_prefix_tokens: int, grid: tuple[int, int], has_cls: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, prefix + h*w, D) tokens -> cls (B, D), patch (B, h, w, D).

    The prefix is CLS first, then registers (timm's order for DINOv2-reg and DINOv3).
    A model without a CLS token gets the mean patch token as its ``cls``.
    """
    b, n, d = tokens.shape
    h, w = grid
    if n != num_prefix_tokens + h * w:
        raise ValueError(
            f"backbone returned {n} tokens, expected {num_prefix_tokens} prefix + {h}x{w} patches"
        )
    patch = tokens[:, num_prefix_tokens:].reshape(b, h, w, d)
    cls = tokens[:, 0] if has_cls and num_prefix_tokens else patch.mean(dim=(1, 2))
    return cls, patch


class FeatureExtractor:
    """Callable: uint8 or [0, 1] float images (B, 3, H, W) -> :class:`Features`.

    Args:
        backbone: from :func:`reconlab.features.backbones.load_backbone` (its model is left as
            it is; a reduced-precision copy is made when needed).
        device: where the model runs.
        precision: ``auto`` (resolved by :func:`reconlab.runtime.precision_for` for linear ops:
            bf16 where the device runs it natively and faster, else fp32), ``bf16`` / ``fp16``
            (fp16 falls back to bf16 on CPU) or ``fp32``.
        compile: ``torch.compile`` the forward with inductor freezing (pays off on long runs).
        batch_size: the expected batch size, a tuning hint for the CPU fast path.
        fast_path: fold LayerScale into the linears and, on CPU in bf16 without compile, run
            them on prepacked oneDNN weights (:mod:`reconlab.features.fastpath`; the latter
            skips itself where unsupported).
    """

    def __init__(
        self,
        backbone: Backbone,
        device: torch.device | str = "cpu",
        precision: str = "auto",
        compile: bool = False,
        batch_size: int = 32,
        fast_path: bool = True,
    ):
        self.backbone = backbone
        self.device = torch.device(device)
        self.precision = precision_for(self.device, precision, kind="linear")
        self.dtype = self.precision.dtype
        model = backbone.model
        if fast_path or self.dtype != torch.float32:
            model = copy.deepcopy(model)  # the backbone's own model stays as loaded
        if fast_path:
            fold_layer_scale(model)  # in fp32, before any cast
        model = model.to(self.dtype)
        self.model = model.to(self.device).eval()
        self.prepacked = 0
        cpu_bf16 = self.device.type == "cpu" and self.dtype == torch.bfloat16
        if fast_path and cpu_bf16 and not compile:
            h, w = backbone.grid
            rows = batch_size * (backbone.num_prefix_tokens + h * w)
            self.prepacked = prepack_linears(self.model, rows)
        shape = (1, 3, 1, 1)
        self.mean = torch.tensor(backbone.mean, device=self.device).view(shape)
        self.std = torch.tensor(backbone.std, device=self.device).view(shape)
        self.has_cls = getattr(self.model, "cls_token", None) is not None
        self._tokens = self._forward_tokens
        if compile:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True  # constant-fold and prepack the frozen weights
            self._tokens = torch.compile(self._forward_tokens)

    def _forward_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        layers = list(self.backbone.layers)
        if not layers:
            return self.model.forward_features(x), []
        final, inter = self.model.forward_intermediates(
            x, indices=layers, norm=True, output_fmt="NLC", return_prefix_tokens=False
        )
        return final, inter

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> Features:
        x = images.to(self.device, non_blocking=True)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        x = ((x - self.mean) / self.std).to(self.dtype)
        bb = self.backbone
        tokens, inter = self._tokens(x)
        cls, patch = split_tokens(tokens, bb.num_prefix_tokens, bb.grid, self.has_cls)
        h, w = bb.grid
        layers = {
            k: t.reshape(t.shape[0], h, w, t.shape[-1])
            for k, t in zip(bb.layers, inter, strict=True)
        }
        return Features(cls=cls, patch=patch, layers=layers)
