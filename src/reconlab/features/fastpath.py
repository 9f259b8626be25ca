"""Inference rewrites of a frozen ViT: LayerScale folded into weights; prepacked CPU linears.

:func:`fold_layer_scale` (any device, done in fp32 before a cast): ``gamma * (x W^T + b)`` is
``x (gamma W)^T + gamma b``, so each LayerScale multiply after ``attn.proj`` / ``mlp.fc2`` (timm
ViT ``ls1``/``ls2``, Eva/DINOv3 ``gamma_1``/``gamma_2``) moves into that linear's weights: the same
function with two elementwise passes fewer per block.

:func:`prepack_linears`, bf16 on CPU:

``F.linear`` on bf16 CPU tensors re-reads the weight in its plain layout at every call and
broadcasts the bias with a separate copy. oneDNN's linear primitive on a weight reordered once
into its blocked layout (what inductor's freezing does under ``torch.compile``) runs the ViT-S
linears about 1.2-1.5x faster here with bit-identical results, and can apply an erf-GELU in the
same pass (the MLP's ``fc1 -> GELU``). These ops are PyTorch internals (``torch.ops.mkldnn``),
so :func:`prepack_linears` checks them on a tiny input first and leaves the model untouched
when they are missing or fail: the fast path is an optimisation, never a requirement.

Why a hand-written path and not only ``torch.compile`` (which does the same prepacking under
inductor's freezing, ``features.compile: true``): measured with ``benchmarks/feature_cache.py
--images 32 --rounds 3`` on a 2-core AMD EPYC with AVX-512 BF16 (a loaded machine, so read the
ratios), bf16 eager with this path ran x1.99 the plain fp32 loop and x1.47 without it, while
``--compile`` spent 325 s compiling ViT-S before its first batch — longer than the whole
default feature stage (4 backbones x 64 crops). On AVX2-only CPUs the path is never taken:
``precision: auto`` resolves to fp32 there, and oneDNN refuses the bf16 prepack anyway
(``_fast_path_works`` returns False, checked under ``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2``). For long runs (``config/gpu.yaml`` scale, thousands of images)
``compile: true`` is the better choice and turns this path off.
"""

from __future__ import annotations

import torch
from torch import nn


class PackedLinear(nn.Module):
    """A frozen ``nn.Linear`` (optionally followed by erf-GELU) on a prepacked oneDNN weight."""

    def __init__(self, linear: nn.Linear, rows_hint: int, gelu: bool = False):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, rows_hint)
        self.bias = None if linear.bias is None else linear.bias.detach()
        self.attr = "gelu" if gelu else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        algorithm = "none" if self.attr == "gelu" else ""  # "none": erf GELU, not tanh
        return torch.ops.mkldnn._linear_pointwise(
            x, self.weight, self.bias, self.attr, [], algorithm
        )

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, prepacked, post-op {self.attr}"


def _fast_path_works() -> bool:
    if not (
        torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    ):
        return False
    try:
        with torch.inference_mode():
            lin = nn.Linear(32, 16).to(torch.bfloat16)
            x = torch.randn(3, 5, 32, dtype=torch.bfloat16)
            ok = torch.allclose(PackedLinear(lin, 15)(x).float(), lin(x).float(), atol=1e-2)
            gelu = PackedLinear(lin, 15, gelu=True)(x).float()
            return ok and torch.allclose(gelu, nn.functional.gelu(lin(x)).float(), atol=3e-2)
    except (RuntimeError, TypeError, AttributeError):
        return False


def prepack_linears(model: nn.Module, rows_hint: int) -> int:
    """Swap the linears of a bf16 CPU ``model`` in place; return how many were swapped (0: none).

    ``rows_hint`` is the expected number of input rows (batch x tokens), a tuning hint only.
    An MLP's ``fc1`` followed by an exact ``nn.GELU`` gets the GELU fused (``act`` -> Identity).
    """
    if not _fast_path_works():
        return 0
    swapped = 0
    for module in list(model.modules()):
        fuse = (
            isinstance(getattr(module, "fc1", None), nn.Linear)
            and isinstance(getattr(module, "act", None), nn.GELU)
            and module.act.approximate == "none"
        )
        if fuse:
            module.fc1 = PackedLinear(module.fc1, rows_hint, gelu=True)
            module.act = nn.Identity()
            swapped += 1
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and child.weight.dtype == torch.bfloat16:
                setattr(module, name, PackedLinear(child, rows_hint))
                swapped += 1
    return swapped


def _scale_rows(linear: nn.Linear, gamma: torch.Tensor) -> None:
    with torch.no_grad():
        linear.weight.mul_(gamma.to(linear.weight.dtype)[:, None])
        if linear.bias is not None:
            linear.bias.mul_(gamma.to(linear.bias.dtype))


def fold_layer_scale(model: nn.Module) -> int:
    """Fold every LayerScale of ``model``'s blocks into the preceding linear, in place.

    Returns the number of scales folded. Only the two layouts timm's DINOv2 (``ls1``/``ls2``
    LayerScale modules) and DINOv3 (``gamma_1``/``gamma_2`` parameters) use are touched, and
    only when ``attn.proj`` / ``mlp.fc2`` is a plain ``nn.Linear`` (the last op of the branch).
    """
    folded = 0
    for block in model.modules():
        for i, branch, last in ((1, "attn", "proj"), (2, "mlp", "fc2")):
            linear = getattr(getattr(block, branch, None), last, None)
            if not isinstance(linear, nn.Linear):
                continue
            ls = getattr(block, f"ls{i}", None)
            gamma = getattr(block, f"gamma_{i}", None)
            if ls is not None and isinstance(getattr(ls, "gamma", None), torch.Tensor):
                _scale_rows(linear, ls.gamma.detach())
                setattr(block, f"ls{i}", nn.Identity())
                folded += 1
            elif isinstance(gamma, torch.Tensor):
                _scale_rows(linear, gamma.detach())
                setattr(block, f"gamma_{i}", None)
                folded += 1
    return folded
