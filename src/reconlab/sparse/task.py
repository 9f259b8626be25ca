"""The sparse-query task: pixel coordinates, seeded observation masks and query sampling.

A field of ``size x size`` pixels is observed at ``n_observed`` positions (5%: 51 of 1024). The
model predicts values at query coordinates. Training draws ``n_queries`` (200) random query
positions per field and step from all pixels; the fixed-query ablation always uses the same ones.
Evaluation masks are seeded per (seed, split, field index), so every model and every baseline sees
exactly the same observed pixels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

_SPLIT_ID = {"train": 0, "val": 1, "test": 2}
FIXED_QUERY_STRIDE = 5  # the earlier study's fixed test pixels: 0, 5, 10, ... (ablation only)


def pixel_coords(size: int) -> torch.Tensor:
    """(size*size, 2) pixel-centre coordinates (y, x) in (0, 1), row-major like ``field.ravel()``."""
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([yy.flatten(), xx.flatten()], -1)


def eval_masks(n_fields: int, n_pixels: int, n_observed: int, seed: int, split: str) -> np.ndarray:
    """(n_fields, n_observed) observed pixel indices, one seeded draw per field (sorted)."""
    out = np.empty((n_fields, n_observed), dtype=np.int64)
    for i in range(n_fields):
        rng = np.random.default_rng([seed, _SPLIT_ID[split], i])
        out[i] = np.sort(rng.choice(n_pixels, n_observed, replace=False))
    return out


def random_indices(batch: int, n_pixels: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, k) distinct random pixel indices per row."""
    return torch.rand(batch, n_pixels, generator=generator).argsort(1)[:, :k]


class Batch(NamedTuple):
    """One training or evaluation batch (B fields, N observed, Q queries)."""

    obs_xy: torch.Tensor  # (B, N, 2)
    obs_val: torch.Tensor  # (B, N)
    query_xy: torch.Tensor  # (B, Q, 2)
    query_val: torch.Tensor  # (B, Q) ground truth at the queries


def gather_batch(
    fields: torch.Tensor, coords: torch.Tensor, obs_idx: torch.Tensor, query_idx: torch.Tensor
) -> Batch:
    """Build a :class:`Batch` from flat fields (B, P) and index tensors (B, N) / (B, Q)."""
    return Batch(
        obs_xy=coords[obs_idx],
        obs_val=fields.gather(1, obs_idx),
        query_xy=coords[query_idx],
        query_val=fields.gather(1, query_idx),
    )


class QuerySampler:
    """Draws training batches: random fields, fresh random masks, random (or fixed) queries.

    Args:
        fields: (N, P) flat training fields.
        n_observed: observed pixels per field (51).
        n_queries: query pixels per field and step (200).
        seed: seeds the sampler's own generator (independent of model init).
        fixed_queries: the ablation that reproduces the earlier study's bug: every step queries
            the same ``n_observed`` pixels 0, 5, 10, ..., 250 (its "test pixels", all in the top
            quarter of the field) instead of ``n_queries`` random ones; observed pixels stay random.
    """

    def __init__(
        self,
        fields: torch.Tensor,
        n_observed: int,
        n_queries: int,
        seed: int,
        fixed_queries: bool = False,
    ) -> None:
        self.fields = fields
        self.n_pixels = fields.shape[1]
        self.coords = pixel_coords(int(round(self.n_pixels**0.5)))
        self.n_observed, self.n_queries = n_observed, n_queries
        self.generator = torch.Generator().manual_seed(seed)
        self.fixed = None
        if fixed_queries:
            self.fixed = torch.arange(n_observed) * FIXED_QUERY_STRIDE

    def draw_fields(self, batch: int) -> torch.Tensor:
        """(batch, P) training fields: random rows of the stored split."""
        return self.fields[torch.randint(len(self.fields), (batch,), generator=self.generator)]

    def sample(self, batch: int) -> Batch:
        f = self.draw_fields(batch)
        obs = random_indices(batch, self.n_pixels, self.n_observed, self.generator)
        if self.fixed is not None:
            query = self.fixed.expand(batch, -1)
        else:
            query = random_indices(batch, self.n_pixels, self.n_queries, self.generator)
        return gather_batch(f, self.coords, obs, query)


STREAM_SPLIT_ID = 3  # the streamed fields' own seed stream, disjoint from train/val/test (0-2)


class FieldStream(QuerySampler):
    """Draws training batches of FRESH fields from the seeded generator of
    :mod:`reconlab.data.fields` (infinite, deterministic data), then masks and queries as
    :class:`QuerySampler` does.

    Each batch's fields come from ``numpy.random.default_rng([fields_seed, 3, s])`` with ``s``
    drawn from the sampler's own torch generator: the sampler's state (what checkpoints save)
    fixes every later batch, so the same ``seed`` gives the same batches and a resumed run
    continues the stream. The family of each example is uniform over ``families``; its noise
    level is drawn from ``noise_levels`` (as the stored splits cycle through them).

    Args:
        index: the fields folder's ``index.json`` (size, families, noise_levels, seed).
        n_observed, n_queries, seed, fixed_queries: as :class:`QuerySampler`.
    """

    def __init__(
        self,
        index: dict,
        n_observed: int,
        n_queries: int,
        seed: int,
        fixed_queries: bool = False,
    ) -> None:
        size = int(index["size"])
        super().__init__(torch.empty(0, size * size), n_observed, n_queries, seed, fixed_queries)
        self.size, self.fields_seed = size, int(index["seed"])
        self.families = list(index["families"])
        self.noise_levels = [float(x) for x in index["noise_levels"]]

    def draw_fields(self, batch: int) -> torch.Tensor:
        from reconlab.data.fields import make_field

        s = int(torch.randint(2**62, (1,), generator=self.generator))
        rng = np.random.default_rng([self.fields_seed, STREAM_SPLIT_ID, s])
        fams = rng.integers(len(self.families), size=batch)
        noise = rng.integers(len(self.noise_levels), size=batch)
        f = [
            make_field(self.families[a], self.size, rng, self.noise_levels[b])
            for a, b in zip(fams, noise, strict=True)
        ]
        return torch.from_numpy(np.stack(f).reshape(batch, -1))
