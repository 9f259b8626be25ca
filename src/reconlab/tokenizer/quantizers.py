"""Thin wrappers over vector-quantize-pytorch: one output contract for VQ and FSQ.

Quantisation always runs in fp32, also under bf16/fp16 autocast: nearest-code search in half
precision picks wrong codes, and EMA codebook updates in bf16 drift.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from vector_quantize_pytorch import FSQ, VectorQuantize


class QuantizerOutput(NamedTuple):
    """What every quantizer returns.

    quantized: (B, D, h, w) fp32 codes, straight-through gradients to the encoder.
    indices: (B, h, w) int64 token ids in [0, codebook_size).
    commitment: scalar, mean ||z - sg(e)||^2 (0 for FSQ).
    orthogonal: scalar, orthogonality penalty of the codebook (0 when off or FSQ).
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    commitment: torch.Tensor
    orthogonal: torch.Tensor


def _fp32(device: torch.device):
    return torch.autocast(device_type=device.type, enabled=False)


class VQ(nn.Module):
    """EMA vector quantizer (VectorQuantize) with k-means init and dead-code restart."""

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        codebook_dim: int | None = 8,
        cosine: bool = True,
        decay: float = 0.8,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        threshold_ema_dead_code: float = 2.0,
        orthogonal: bool = False,
        rotation_trick: bool = True,
    ) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.vq = VectorQuantize(
            dim=dim,
            codebook_size=codebook_size,
            codebook_dim=codebook_dim,  # low-dim lookup space: better codebook usage (ViT-VQGAN)
            use_cosine_sim=cosine,  # l2-normalised codes and inputs: better usage
            decay=decay,  # EMA codebook update replaces the codebook loss
            kmeans_init=kmeans_init,  # codebook initialised from the first batch
            kmeans_iters=kmeans_iters,
            threshold_ema_dead_code=threshold_ema_dead_code,  # restart codes used less than this
            orthogonal_reg_weight=1.0 if orthogonal else 0.0,  # raw value; weighted in losses.py
            commitment_weight=1.0,  # raw value; weighted in losses.py
            rotation_trick=rotation_trick,  # gradients through the quantizer (arXiv 2410.06424)
            accept_image_fmap=True,
        )

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """z: (B, D, h, w) -> :class:`QuantizerOutput`."""
        with _fp32(z.device):
            quantized, indices, _, parts = self.vq(z.float(), return_loss_breakdown=True)
        zero = quantized.new_zeros(())
        return QuantizerOutput(
            quantized,
            indices.long(),
            parts.commitment if torch.is_tensor(parts.commitment) else zero,
            parts.orthogonal_reg if torch.is_tensor(parts.orthogonal_reg) else zero,
        )

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, h, w) -> quantized codes (B, D, h, w) in the encoder's space."""
        with _fp32(indices.device):
            # get_output_from_indices projects the wrong axis for image maps: look up by hand.
            out = self.vq.project_out(self.vq.codebook[indices])  # (B, h, w, D)
        return out.permute(0, 3, 1, 2).contiguous()

    def ema_dead_codes(self) -> int:
        """Codes whose EMA cluster size is below the restart threshold (what training sees)."""
        threshold = max(float(self.vq._codebook.threshold_ema_dead_code), 1e-3)
        return int((self.vq._codebook.cluster_size < threshold).sum())


class FSQQuantizer(nn.Module):
    """Finite scalar quantisation (FSQ): implicit codebook of prod(levels) codes, no losses."""

    def __init__(self, dim: int, levels: tuple[int, ...]) -> None:
        super().__init__()
        self.codebook_size = int(torch.tensor(levels).prod())
        self.fsq = FSQ(levels=list(levels), dim=dim)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        with _fp32(z.device):
            quantized, indices = self.fsq(z.float())
        zero = quantized.new_zeros(())
        return QuantizerOutput(quantized, indices.long(), zero, zero)

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        with _fp32(indices.device):
            return self.fsq.indices_to_codes(indices)  # (B, h, w) -> (B, D, h, w)

    def ema_dead_codes(self) -> int:
        return 0
