"""PCA maps of patch features: deterministic signs, joint fits, foreground masks.

A PCA map shows the first three principal components of the patch embeddings as RGB. Three
choices make the maps comparable and stable:

* **Joint fit**: one basis is fitted on the patches of a whole set of images, and each image is
  projected on it, so a colour means the same direction in every image of the set.
* **Deterministic signs**: an eigenvector's sign is arbitrary (it can flip between runs, libraries
  or subsets). Each component is oriented so that its scores have a positive third moment
  (skewness): the long tail — usually the minority region, e.g. the object — is positive.
  When the skewness vanishes (symmetric scores), the largest-magnitude loading is made positive.
  Both rules depend only on the data, not on the order of the rows or the solver.
* **Foreground** (DINOv2 paper, section 7): patches whose first-component score exceeds a
  threshold form the foreground; a second PCA fitted on those patches only colours them.

Colours are the scores scaled to [0, 1] with the 1st and 99th percentiles of the whole set.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

SKEW_TOLERANCE = 1e-6  # relative |third moment| under which the skewness rule is undecided


class PCABasis(NamedTuple):
    """A fitted PCA: ``scores = (x - mean) @ components.T``."""

    mean: torch.Tensor  # (D,)
    components: torch.Tensor  # (k, D), orthonormal rows, signs fixed
    explained_variance_ratio: torch.Tensor  # (k,)


def fix_signs(components: torch.Tensor, centred: torch.Tensor) -> torch.Tensor:
    """Orient each row of ``components`` (k, D) by the skewness of its scores on ``centred`` (M, D).

    Returns a copy whose rows have positive score skewness, or, where the skewness is below
    :data:`SKEW_TOLERANCE` relative to the scores' scale, a positive largest-|loading| entry.
    """
    scores = centred @ components.T  # (M, k)
    third = scores.pow(3).mean(0)
    scale = scores.pow(2).mean(0).clamp_min(1e-30).pow(1.5)
    skew = third / scale
    by_loading = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))[:, 0]
    sign = torch.where(skew.abs() > SKEW_TOLERANCE, torch.sign(skew), by_loading)
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return components * sign[:, None]


def fit_pca(x: torch.Tensor, k: int = 3) -> PCABasis:
    """Fit the top-``k`` principal components of ``x`` (M, D) with fixed signs.

    Computed in float64 from the D x D covariance (``torch.linalg.eigh``), so the result does not
    depend on the number or order of the rows beyond floating-point summation.
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"PCA needs an (M >= 2, D) matrix, got shape {tuple(x.shape)}")
    x64 = x.double()
    mean = x64.mean(0)
    centred = x64 - mean
    cov = centred.T @ centred / (x64.shape[0] - 1)
    values, vectors = torch.linalg.eigh(cov)  # ascending
    k = min(k, x.shape[1])
    order = torch.argsort(values, descending=True)[:k]
    components = fix_signs(vectors[:, order].T.contiguous(), centred)
    total = values.clamp_min(0).sum().clamp_min(1e-30)
    ratio = values[order].clamp_min(0) / total
    return PCABasis(mean.float(), components.float(), ratio.float())


def project(grid: torch.Tensor, basis: PCABasis) -> torch.Tensor:
    """(..., D) features -> (..., k) scores on ``basis``."""
    return (grid.float() - basis.mean) @ basis.components.T


def scale_to_unit(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scores (..., k) -> [0, 1] per component by the 1st / 99th percentiles (over ``mask``)."""
    flat = scores.reshape(-1, scores.shape[-1])
    if mask is not None:
        flat = flat[mask.reshape(-1)]
    if flat.shape[0] == 0:
        return torch.zeros_like(scores)
    lo = torch.quantile(flat, 0.01, dim=0)
    hi = torch.quantile(flat, 0.99, dim=0)
    return ((scores - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)


class PCAMaps(NamedTuple):
    """Joint PCA maps of a set of images (N, h, w, ...)."""

    rgb: torch.Tensor  # (N, h, w, 3) in [0, 1]: first three components, joint basis
    foreground: torch.Tensor  # (N, h, w) bool: first-component score above the threshold
    foreground_rgb: torch.Tensor  # (N, h, w, 3): second PCA on the foreground, background 0
    basis: PCABasis
    foreground_basis: PCABasis | None  # None when fewer than 2 foreground patches


def pca_maps(grid: torch.Tensor, foreground_threshold: float = 0.0) -> PCAMaps:
    """Joint PCA maps of ``grid`` (N, h, w, D), with a foreground mask and a foreground PCA.

    Args:
        grid: patch features of the images to show together.
        foreground_threshold: in units of the first component's standard deviation; patches
            scoring above it are foreground.
    """
    n, h, w, d = grid.shape
    flat = grid.reshape(-1, d).float()
    basis = fit_pca(flat, k=3)
    scores = project(flat, basis)
    rgb = _pad3(scale_to_unit(scores)).reshape(n, h, w, 3)
    first = scores[:, 0]
    foreground = first > foreground_threshold * first.std().clamp_min(1e-12)
    fg_rgb = torch.zeros(n * h * w, 3)
    fg_basis = None
    if int(foreground.sum()) >= 2:
        fg_basis = fit_pca(flat[foreground], k=3)
        fg_scores = project(flat[foreground], fg_basis)
        fg_rgb[foreground] = _pad3(scale_to_unit(fg_scores))
    return PCAMaps(rgb, foreground.reshape(n, h, w), fg_rgb.reshape(n, h, w, 3), basis, fg_basis)


def _pad3(x: torch.Tensor) -> torch.Tensor:
    """(M, k<=3) -> (M, 3): missing components (D < 3) shown as 0."""
    if x.shape[-1] >= 3:
        return x[..., :3]
    return torch.cat([x, x.new_zeros(*x.shape[:-1], 3 - x.shape[-1])], -1)
