"""Interpolation baselines on the same observed pixels: griddata, RBF, Gaussian process.

Every method maps (observed coordinates, values) of one field to values at all pixels. The GP is
the exact GP of :mod:`reconlab.sparse.gp` (the sparse model's kriging prior), its length scale
picked per field by log marginal likelihood from a fixed grid.

Two rows are references, not interpolation baselines: ``mean`` (the collapse level) and
``family_fit`` (the family-aware limit of :mod:`reconlab.sparse.family_fit`, which is told each
field's family and fits that family's own functional form; not applicable to families without
one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from scipy.interpolate import RBFInterpolator, griddata

from reconlab.sparse.family_fit import family_fit
from reconlab.sparse.gp import exact_gp, most_likely_mean


def _griddata(method: str) -> Callable:
    def interpolate(obs_xy, obs_val, query_xy):
        out = griddata(obs_xy, obs_val, query_xy, method=method)
        if method != "nearest":  # outside the convex hull: fall back to the nearest observation
            near = griddata(obs_xy, obs_val, query_xy, method="nearest")
            out = np.where(np.isnan(out), near, out)
        return out

    return interpolate


def rbf(obs_xy, obs_val, query_xy):
    """Thin-plate-spline radial basis interpolation."""
    return RBFInterpolator(obs_xy, obs_val, kernel="thin_plate_spline")(query_xy)


LENGTH_SCALES = (0.03, 0.05, 0.08, 0.12, 0.18, 0.27, 0.4)


def gaussian_process(obs_xy, obs_val, query_xy):
    """Exact GP posterior mean at the length scale (of :data:`LENGTH_SCALES`) maximising the log
    marginal likelihood: :func:`reconlab.sparse.gp.exact_gp`, the sparse model's prior too."""
    posterior = exact_gp(
        *(
            torch.from_numpy(np.asarray(a, dtype=np.float64))[None]
            for a in (obs_xy, obs_val, query_xy)
        ),
        torch.tensor(LENGTH_SCALES),
    )
    return most_likely_mean(posterior)[0].numpy()


def observed_mean(obs_xy, obs_val, query_xy):
    """The collapse reference: every pixel gets the mean of the observed values."""
    return np.full(len(query_xy), obs_val.mean())


METHODS: dict[str, Callable] = {
    "mean": observed_mean,
    "nearest": _griddata("nearest"),
    "linear": _griddata("linear"),
    "cubic": _griddata("cubic"),
    "rbf": rbf,
    "gp": gaussian_process,
    "family_fit": family_fit,  # keywords family= and settings=; None where not applicable
}
FAMILY_AWARE = frozenset({"family_fit"})
REFERENCES = frozenset({"mean", "family_fit"})  # never "the best interpolation baseline"


def interpolate_fields(
    method: str,
    fields: np.ndarray,
    masks: np.ndarray,
    family: Sequence[str] | None = None,
    settings: Mapping | None = None,
) -> np.ndarray:
    """Predict every pixel of each field (M, S, S) from its observed pixel indices (M, N).

    A family-aware method also gets each field's ``family`` name (M,) and its ``settings``; its
    rows are NaN where it is not applicable to that family. Raises ValueError for an unknown
    method or a family-aware one without ``family``.
    """
    if method not in METHODS:
        raise ValueError(f"sparse.baselines.methods: {method!r}; choose from {sorted(METHODS)}")
    if method in FAMILY_AWARE and family is None:
        raise ValueError(f"sparse baseline {method!r} needs each field's family")
    size = fields.shape[-1]
    c = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(c, c, indexing="ij")
    xy = np.stack([yy.ravel(), xx.ravel()], -1)
    flat = fields.reshape(len(fields), -1).astype(np.float64)
    out = np.empty_like(flat)
    for i, (f, m) in enumerate(zip(flat, masks, strict=True)):
        if method in FAMILY_AWARE:
            pred = METHODS[method](xy[m], f[m], xy, family=family[i], settings=settings)
            out[i] = np.nan if pred is None else pred
        else:
            out[i] = METHODS[method](xy[m], f[m], xy)
    return out.reshape(fields.shape)
