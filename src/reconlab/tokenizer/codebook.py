"""Codebook health from token counts: usage, perplexity, dead codes.

Counts are accumulated over a whole split (:class:`CodeCounter`), never one batch: a batch of
a few hundred tokens cannot show usage of a codebook of a thousand codes.
"""

from __future__ import annotations

import math

import torch


class CodeCounter:
    """Accumulates a histogram of token ids over many batches."""

    def __init__(self, codebook_size: int) -> None:
        self.counts = torch.zeros(codebook_size, dtype=torch.int64)

    def update(self, indices: torch.Tensor) -> None:
        flat = indices.reshape(-1).to("cpu", torch.int64)
        if flat.numel() and (flat.min() < 0 or flat.max() >= self.counts.numel()):
            raise ValueError(f"token id out of range [0, {self.counts.numel()})")
        self.counts += torch.bincount(flat, minlength=self.counts.numel())

    def health(self) -> dict[str, float | int]:
        return codebook_health(self.counts)


def codebook_health(counts: torch.Tensor) -> dict[str, float | int]:
    """Usage % (codes used at least once), perplexity exp(H(p)) and dead codes from counts (K,).

    Perplexity equals K when every code is used equally often and 1 when one code takes all.
    """
    counts = counts.to(torch.float64)
    size, tokens = counts.numel(), float(counts.sum())
    used = int((counts > 0).sum())
    if tokens == 0:
        return {
            "codebook_usage": 0.0,
            "perplexity": math.nan,
            "dead_codes": size,
            "used_codes": 0,
            "codebook_size": size,
            "tokens": 0,
        }
    p = counts[counts > 0] / tokens
    entropy = float(-(p * p.log()).sum())
    return {
        "codebook_usage": 100.0 * used / size,
        "perplexity": math.exp(entropy),
        "dead_codes": size - used,
        "used_codes": used,
        "codebook_size": size,
        "tokens": int(tokens),
    }
