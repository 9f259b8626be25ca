"""Image retrieval by cosine similarity, labelled by source photo: recall@k and mAP (torchmetrics).

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

    Computed by torchmetrics: recall@k in the image-retrieval sense (a relevant item among the top
    k; torchmetrics' ``RetrievalHitRate``, which ``RetrievalRecall`` would not match when a query
    has several relevant items) and ``RetrievalMAP``, each query's items scored by their rank of
    :func:`rank` so ties keep its order. Queries with no relevant item are skipped and counted.
    torchmetrics averages in float32: values agree with a float64 computation to ~1e-7.

    Raises:
        ValueError: when ``labels`` does not have one entry per embedding.
    """
    from torchmetrics import MetricCollection
    from torchmetrics.retrieval import RetrievalHitRate, RetrievalMAP

    n = embeddings.shape[0]
    if len(labels) != n:
        raise ValueError(f"retrieval: {len(labels)} labels for {n} embeddings")
    codes = {label: i for i, label in enumerate(sorted(set(labels)))}
    y = torch.tensor([codes[label] for label in labels])
    if n < 2:
        return RetrievalResult({k: float("nan") for k in ks}, float("nan"), 0, n)
    order = rank(embeddings)
    relevant = y[order] == y[:, None]  # (N, N-1) in rank order
    has = relevant.any(1)
    if not bool(has.any()):
        return RetrievalResult({k: float("nan") for k in ks}, float("nan"), 0, n)
    metrics = MetricCollection(
        {f"recall@{k}": RetrievalHitRate(top_k=k, empty_target_action="skip") for k in ks}
        | {"map": RetrievalMAP(empty_target_action="skip")}
    )
    scores = torch.arange(n - 1, 0, -1, dtype=torch.float64).expand(n, -1)  # rank 1 scores highest
    query = torch.arange(n)[:, None].expand(-1, n - 1)
    values = metrics(scores.flatten(), relevant.flatten(), indexes=query.flatten())
    recall = {k: float(values[f"recall@{k}"]) for k in ks}
    return RetrievalResult(recall, float(values["map"]), int(has.sum()), int((~has).sum()))


def background_directions(patches: torch.Tensor, k: int) -> torch.Tensor:
    """(k, D) top principal directions of patch tokens (M, D): the variance all images share."""
    return fit_pca(patches, k=k).components


def remove_directions(embeddings: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Project the orthonormal rows of ``directions`` (k, D) out of ``embeddings`` (N, D)."""
    if directions.numel() == 0:
        return embeddings.float()
    x = embeddings.float()
    return x - (x @ directions.T) @ directions
