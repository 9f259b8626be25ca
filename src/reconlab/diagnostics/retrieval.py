"""Image retrieval by cosine similarity, labelled by source photo: recall@k and mAP.

Every image is a query against all the others (leave-one-out); an item is relevant when it comes
from the same source photo as the query. Queries with no relevant item are skipped and counted.
Optionally the top principal directions of the patch tokens — the variance shared by every image,
mostly background — are projected out of the embeddings before ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from reconlab.diagnostics.pca import fit_pca


class RetrievalResult(NamedTuple):
    recall: dict[int, float]  # k -> fraction of queries with a relevant item in the top k
    mean_average_precision: float
    queries: int  # queries with at least one relevant item (the denominator)
    skipped: int  # queries whose label no other item shares


def rank(embeddings: torch.Tensor) -> torch.Tensor:
    """(N, N-1) indices of the other items by decreasing cosine similarity (ties: lower index)."""
    x = F.normalize(embeddings.double(), dim=-1)
    sim = x @ x.T
    n = sim.shape[0]
    sim.fill_diagonal_(-torch.inf)
    order = torch.sort(sim, dim=1, descending=True, stable=True).indices
    return order[:, : n - 1]


def retrieval_metrics(
    embeddings: torch.Tensor, labels: Sequence[str], ks: Sequence[int] = (1, 5)
) -> RetrievalResult:
    """Leave-one-out recall@k and mean average precision of ``embeddings`` (N, D).

    Raises:
        ValueError: when ``labels`` does not have one entry per embedding.
    """
    n = embeddings.shape[0]
    if len(labels) != n:
        raise ValueError(f"retrieval: {len(labels)} labels for {n} embeddings")
    codes = {label: i for i, label in enumerate(sorted(set(labels)))}
    y = torch.tensor([codes[label] for label in labels])
    if n < 2:
        return RetrievalResult({k: float("nan") for k in ks}, float("nan"), 0, n)
    order = rank(embeddings)
    relevant = (y[order] == y[:, None]).double()  # (N, N-1) in rank order
    has = relevant.sum(1) > 0
    if not bool(has.any()):
        return RetrievalResult({k: float("nan") for k in ks}, float("nan"), 0, n)
    rel = relevant[has]
    recall = {k: float((rel[:, :k].sum(1) > 0).double().mean()) for k in ks}
    hits = rel.cumsum(1)
    ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float64)
    ap = (hits / ranks * rel).sum(1) / rel.sum(1)
    return RetrievalResult(recall, float(ap.mean()), int(has.sum()), int((~has).sum()))


def background_directions(patches: torch.Tensor, k: int) -> torch.Tensor:
    """(k, D) top principal directions of patch tokens (M, D): the variance all images share."""
    return fit_pca(patches, k=k).components


def remove_directions(embeddings: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Project the orthonormal rows of ``directions`` (k, D) out of ``embeddings`` (N, D)."""
    if directions.numel() == 0:
        return embeddings.float()
    x = embeddings.float()
    return x - (x @ directions.T) @ directions
