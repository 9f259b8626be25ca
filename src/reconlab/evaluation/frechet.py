"""Fréchet distance between two sets of features, and its bootstrap interval.

FD(a, b) = ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^{1/2}), with the unbiased
sample covariances S — the distance of FID (Heusel et al. 2017, pytorch-fid) and of FDD
(Stein et al. 2023, dgm-eval's ``compute_FD_with_reps``: the same formula on DINOv2 features).

The trace term is computed exactly without a d x d matrix square root: with centred feature
matrices A (n_a x d) and B (n_b x d), S_a = A'A / (n_a - 1), S_b = B'B / (n_b - 1), the non-zero
eigenvalues of S_a S_b are the squared singular values of A B' / sqrt((n_a - 1)(n_b - 1)), so
tr((S_a S_b)^{1/2}) is the sum of those singular values. For a few hundred samples of 2048-d
features this is milliseconds instead of seconds (scipy.linalg.sqrtm), which makes a bootstrap
affordable; tests check it against the sqrtm formula.
"""

from __future__ import annotations

import numpy as np
import torch


def frechet_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between feature sets ``a`` (N_a, D) and ``b`` (N_b, D), float64.

    Raises ValueError when a set has fewer than 2 samples or the feature sizes differ.
    """
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"frechet_distance: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(
            f"frechet_distance: needs at least 2 samples per set, got {len(a)} and {len(b)}"
        )
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = a - mu_a, b - mu_b
    tr_a = float(ca.pow(2).sum()) / (len(a) - 1)
    tr_b = float(cb.pow(2).sum()) / (len(b) - 1)
    cross = torch.linalg.svdvals(ca @ cb.T).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
    value = float((mu_a - mu_b).pow(2).sum()) + tr_a + tr_b - 2 * float(cross)
    return max(value, 0.0)  # rounding can leave -1e-12 for identical sets


def bootstrap_interval(
    a: torch.Tensor, b: torch.Tensor, replicates: int, seed: int, level: float = 0.95
) -> list[float]:
    """Percentile bootstrap interval ``[lo, hi]`` of :func:`frechet_distance` (a, b).

    ``a`` and ``b`` are paired (row i of both comes from image i: a reconstruction and its
    target), so each replicate resamples the same row indices, with replacement, in both sets.
    """
    if len(a) != len(b):
        raise ValueError(f"bootstrap_interval: paired sets differ in size ({len(a)}, {len(b)})")
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(replicates):
        idx = torch.randint(len(a), (len(a),), generator=gen)
        if len(torch.unique(idx)) < 2:  # a replicate of one distinct sample has no covariance
            continue
        values.append(frechet_distance(a[idx], b[idx]))
    if not values:
        raise ValueError("bootstrap_interval: every replicate drew a single distinct sample")
    tail = (1 - level) / 2
    lo, hi = np.quantile(values, [tail, 1 - tail])
    return [float(lo), float(hi)]
