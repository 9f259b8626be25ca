"""Tokenizer losses: reconstruction, perceptual (pretrained backbones only), commitment, orthogonal.

The codebook itself is updated by EMA (``decay`` in ``tokenizer.quantizer``), which replaces the
VQ-VAE codebook loss ||sg(z) - e||^2; the train log records this instead of a codebook term.

A perceptual loss from randomly initialised features is not a perceptual loss, so the term is
only built from pretrained weights (a local file, or ``pretrained`` through torchvision / timm,
both through :mod:`reconlab.weights`); otherwise it is off and the reason is recorded.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from reconlab.tokenizer.model import TokenizerOutput
from reconlab.weights import create_timm_model, load_into, torchvision_state

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_DINO_MODEL = "vit_small_patch14_dinov2.lvd142m"
_KEY = "tokenizer.perceptual.weights"
_ALTERNATIVES = "use a local weights file path, or 'none' to disable the perceptual loss"


class LossTerms(NamedTuple):
    """Unweighted components and the weighted total (all scalars)."""

    total: torch.Tensor
    reconstruction: torch.Tensor
    perceptual: torch.Tensor
    commitment: torch.Tensor
    orthogonal: torch.Tensor


class VGGFeatures(nn.Module):
    """VGG16 features up to relu3_3 on ImageNet-normalised input (torchvision's VGG16)."""

    def __init__(self, weights: str) -> None:
        super().__init__()
        from torchvision.models import vgg16

        state, self.weights_id = torchvision_state("vgg16", weights, _KEY)
        # A full VGG16 checkpoint or its `features` part alone: the classifier is not used.
        state = {
            k.removeprefix("features."): v
            for k, v in state.items()
            if not k.startswith("classifier.")
        }
        features = vgg16(weights=None).features
        load_into(features, state, _KEY, weights)
        self.features = features[:16]
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)


class DINOFeatures(nn.Module):
    """DINOv2 ViT-S/14 patch tokens (timm) of the input resized to 224 px."""

    def __init__(self, weights: str) -> None:
        super().__init__()
        self.model, self.weights_id = create_timm_model(_DINO_MODEL, weights, _KEY, img_size=224)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        return self.model.forward_features((x - self.mean) / self.std)


def build_perceptual(backbone: str, weights: str | None) -> tuple[nn.Module | None, str]:
    """The frozen feature network, or None, and a one-line description for the train log."""
    if weights in (None, "none"):
        return None, (
            "disabled: tokenizer.perceptual.weights is 'none' (no pretrained VGG16/DINO weights; "
            "features of random weights are not a perceptual loss)"
        )
    if weights == "random":
        raise ValueError(f"tokenizer.perceptual.weights: 'random' is not allowed; {_ALTERNATIVES}")
    net: nn.Module = VGGFeatures(weights) if backbone == "vgg16" else DINOFeatures(weights)
    net.eval().requires_grad_(False)
    return net, f"{backbone} features, weights {weights} ({net.weights_id})"


def tokenizer_loss(
    out: TokenizerOutput,
    target: torch.Tensor,
    weights: dict[str, float],
    kind: str = "mse",
    perceptual: nn.Module | None = None,
) -> LossTerms:
    """Weighted sum of the components; ``weights`` keys: reconstruction, perceptual, commitment,
    orthogonal. Computed in fp32 whatever the autocast dtype of the forward pass."""
    recon = out.recon.float()
    if kind == "l1":
        rec = F.l1_loss(recon, target)
    else:
        rec = F.mse_loss(recon, target)
    zero = rec.new_zeros(())
    perc = zero
    if perceptual is not None and weights.get("perceptual", 0) > 0:
        perc = F.mse_loss(perceptual(recon.clamp(0, 1)).float(), perceptual(target).float())
    commit, ortho = out.commitment.float(), out.orthogonal.float()
    total = (
        weights["reconstruction"] * rec
        + weights.get("perceptual", 0) * perc
        + weights["commitment"] * commit
        + weights["orthogonal"] * ortho
    )
    return LossTerms(total, rec, perc, commit, ortho)
