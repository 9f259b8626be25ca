"""LPIPS, only from real pretrained weights (decision 4): otherwise "not computed: <reason>".

LPIPS = an ImageNet backbone (AlexNet / VGG16 / SqueezeNet) + small linear heads. The heads ship
with torchmetrics; the backbone weights cannot be downloaded here, so ``decoder.lpips_weights``
names the torchvision weights file (e.g. ``alexnet-owt-7be5be79.pth`` from a machine with
network access). Without it, the metric is reported as not computed — never faked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch

from reconlab.evaluation.image_metrics import not_computed
from reconlab.io import sha256_file

NO_WEIGHTS = not_computed(
    "LPIPS needs ImageNet-pretrained backbone weights; set decoder.lpips_weights to a local "
    "torchvision weights file"
)

LpipsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def load_lpips(weights: str | Path, net: str = "alex") -> tuple[LpipsFn, str]:
    """LPIPS with the backbone loaded from ``weights``; returns (fn(pred, target) -> (B,), sha256).

    ``fn`` takes images in [0, 1]. Raises FileNotFoundError / ValueError naming
    ``decoder.lpips_weights`` when the file is missing or is not that backbone's state dict.
    """
    from torchmetrics.functional.image.lpips import _LPIPS

    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"decoder.lpips_weights: {path} does not exist; give a local torchvision "
            f"{net} weights file, or null to skip LPIPS"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line message
        raise ValueError(f"decoder.lpips_weights: {path} is not a torch state dict ({e})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    # Linear heads: torchmetrics' bundled LPIPS v0.1 weights. Backbone: random until loaded below.
    model = _LPIPS(pretrained=True, net=net, pnet_rand=True).eval()
    mapped = {}
    for key in model.net.state_dict():
        # LPIPS splits torchvision's `features` into slices but keeps the layer index:
        # net.slice{k}.{i}.weight  <-  features.{i}.weight
        source = re.sub(r"^slice\d+\.", "features.", key)
        if source not in state:
            raise ValueError(
                f"decoder.lpips_weights: {path} has no {source!r}; is it torchvision's {net} "
                f"(decoder.lpips_net) state dict?"
            )
        mapped[key] = state[source]
    model.net.load_state_dict(mapped)

    @torch.inference_mode()
    def lpips(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = model(pred.float().clamp(0, 1), target.float(), normalize=True)
        return out.flatten()

    return lpips, sha256_file(path)
