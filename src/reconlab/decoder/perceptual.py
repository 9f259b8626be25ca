"""LPIPS, only from real pretrained weights (decision 4): otherwise "not computed: <reason>".

LPIPS (Zhang et al. 2018) = an ImageNet backbone (AlexNet / VGG16 / SqueezeNet) + small linear
heads; torchmetrics' public ``LearnedPerceptualImagePatchSimilarity`` ships the v0.1 heads. The
backbone weights cannot be downloaded here, so ``decoder.lpips_weights`` names torchvision's
weights file (e.g. ``alexnet-owt-7be5be79.pth`` from a machine with network access), handed to
torchmetrics through :func:`reconlab.weights.torchvision_weights_as_pretrained`. Without it,
the metric is reported as not computed — never faked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from reconlab.evaluation.image_metrics import not_computed
from reconlab.weights import torchvision_weights_as_pretrained

NO_WEIGHTS = not_computed(
    "LPIPS needs ImageNet-pretrained backbone weights; set decoder.lpips_weights to a local "
    "torchvision weights file"
)
LPIPS_ARCH = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}

LpipsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def load_lpips(weights: str | Path, net: str = "alex") -> tuple[LpipsFn, str]:
    """LPIPS with the backbone loaded from ``weights``; returns (fn(pred, target) -> (B,), identity).

    ``fn`` takes (B, 3, H, W) images in [0, 1]; ``identity`` is ``sha256:<hex>`` of the file
    (see :mod:`reconlab.weights`). Raises FileNotFoundError / ValueError naming
    ``decoder.lpips_weights`` when the file is missing or is not that backbone's state dict.
    """
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    key = "decoder.lpips_weights"
    with torchvision_weights_as_pretrained(LPIPS_ARCH[net], str(weights), key) as identity:
        metric = LearnedPerceptualImagePatchSimilarity(net, reduction="none", normalize=True)
    metric.eval()

    @torch.inference_mode()
    def lpips(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        metric.reset()
        return metric(pred.float().clamp(0, 1), target.float()).reshape(-1)

    return lpips, identity
