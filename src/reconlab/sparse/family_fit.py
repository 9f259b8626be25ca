"""The family-aware limit: a least-squares fit of a field family's own functional form.

Where the family a field was drawn from has a form with few parameters, fitting that form to the
observed pixels shows what is attainable from them; it is a reference row beside the
interpolation baselines, never one of them (it is told the family; they are not).

Forms (the generators of :mod:`reconlab.data.fields`; coordinates ``p = (y, x)`` in (0, 1)):

- ``sinusoid``: ``a sin(2 pi k.p) + b cos(2 pi k.p) + c`` — a plane wave with wave vector ``k``
  (1-4 cycles, any direction, any phase), then the affine map of the min-max normalisation;
- ``radial``: ``a sin(2 pi w |p - m|) + b cos(2 pi w |p - m|) + c`` (centre ``m`` in
  [0.2, 0.8]^2, ``w`` 1.5-5 cycles);
- ``interference``: the same for two centres ``m1, m2`` in [-0.2, 1.2]^2 with one shared ``w``
  (2-5 cycles) and their own ``a_j, b_j``.

Every form is linear in its amplitudes given its nonlinear parameters (wave vector, centres,
frequency). The fit scores every candidate of a coarse grid over the nonlinear parameters by the
residual of its linear least-squares solve (all candidates at once, numpy), then refines the
``starts`` best with :func:`scipy.optimize.least_squares` (trust-region reflective, all
parameters, ``max_nfev`` evaluations each) and keeps the lowest residual. Noise-free fields of
the form's family are recovered to float32 rounding (about 157 dB PSNR from 51 of 1024 pixels);
other families get ``None`` (not applicable) rather than a made-up number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

TAU = 2 * np.pi
NOT_APPLICABLE = "not applicable"  # what summaries say for a family without a form
LABEL = "family-aware least-squares fit: the attainable limit, told each field's family"

# Grid sizes and refinement budget; sparse.baselines.family_fit in params.yaml overrides them.
DEFAULTS = {
    "frequencies": 16,  # frequency values of every grid
    "directions": 48,  # sinusoid: plane-wave directions in [0, pi)
    "centres": 13,  # radial: centre values per axis over [0.2, 0.8]
    "source_centres": 29,  # interference: centre values per axis over [-0.2, 1.2]
    "sources": 16,  # interference: distinct one-source fits searched for the second source
    "starts": 6,  # best candidates refined by least_squares
    "max_nfev": 200,  # least_squares function evaluations per start
}


def _waves(phase: np.ndarray) -> list[np.ndarray]:
    return [np.sin(phase), np.cos(phase)]


def _plane(theta: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """theta (..., 2) wave vector (ky, kx) in cycles per unit -> (..., N, 3)."""
    cols = _waves(TAU * (theta[..., None, :] @ xy.T)[..., 0, :])
    return np.stack([*cols, np.ones_like(cols[0])], -1)


def _ring(centre: np.ndarray, freq: np.ndarray, xy: np.ndarray) -> list[np.ndarray]:
    r = np.hypot(xy[:, 0] - centre[..., :1], xy[:, 1] - centre[..., 1:2])  # (..., N)
    return _waves(TAU * freq[..., None] * r)


def _radial(theta: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """theta (..., 3) = (cy, cx, w) -> (..., N, 3)."""
    cols = _ring(theta[..., :2], theta[..., 2], xy)
    return np.stack([*cols, np.ones_like(cols[0])], -1)


def _interference(theta: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """theta (..., 5) = (c1y, c1x, c2y, c2x, w) -> (..., N, 5)."""
    cols = _ring(theta[..., 0:2], theta[..., 4], xy) + _ring(theta[..., 2:4], theta[..., 4], xy)
    return np.stack([*cols, np.ones_like(cols[0])], -1)


@dataclass(frozen=True)
class Form:
    """``f(p) = basis(theta, p) @ coef``: ``basis`` maps theta (..., d) and xy (N, 2) to (..., N, k);
    ``candidates`` maps (obs_xy, obs_val, settings) to the thetas (K, d) the search scores;
    ``bound`` limits every theta component to [-bound, bound] while refining (keeps fits to
    fields of another family finite)."""

    basis: Callable[[np.ndarray, np.ndarray], np.ndarray]
    candidates: Callable[[np.ndarray, np.ndarray, Mapping], np.ndarray]
    bound: float = 16.0  # cycles per unit and centres: 16 is the Nyquist frequency of 32 px


def _grid_costs(form: Form, grid: np.ndarray, xy: np.ndarray, y: np.ndarray) -> tuple:
    """Residual sum of squares (K,) and coefficients (K, k) of the linear least-squares solve at
    every candidate theta of ``grid`` (K, d), in chunks of about 8 MB of basis values."""
    chunk = max(1, 2**20 // (len(y) * 8))
    costs, coefs = [], []
    for start in range(0, len(grid), chunk):
        b = form.basis(grid[start : start + chunk], xy)  # (K, N, k)
        bt = b.transpose(0, 2, 1)
        gram = bt @ b + 1e-9 * np.eye(b.shape[-1])  # the ridge keeps collinear bases solvable
        coef = np.linalg.solve(gram, (bt @ y)[..., None])[..., 0]
        costs.append((((b @ coef[..., None])[..., 0] - y) ** 2).sum(-1))
        coefs.append(coef)
    return np.concatenate(costs), np.concatenate(coefs)


def _axis(lo: float, hi: float, n: int) -> np.ndarray:
    return np.linspace(lo, hi, n) if n > 1 else np.array([(lo + hi) / 2])


def _plane_grid(xy: np.ndarray, y: np.ndarray, s: Mapping) -> np.ndarray:
    """(frequencies * directions, 2) wave vectors (ky, kx): 1-4 cycles, directions in [0, pi)
    (the opposite direction is the same wave with another phase)."""
    freq = _axis(1.0, 4.0, s["frequencies"])
    angle = np.arange(s["directions"]) * np.pi / s["directions"]
    f, a = np.meshgrid(freq, angle, indexing="ij")
    return np.stack([f * np.sin(a), f * np.cos(a)], -1).reshape(-1, 2)


def _ring_grid(lo: float, hi: float, n: int, wlo: float, whi: float, nw: int) -> np.ndarray:
    """(n * n * nw, 3) candidates (cy, cx, w): centres on [lo, hi]^2, frequencies on [wlo, whi]."""
    c = _axis(lo, hi, n)
    cy, cx, w = np.meshgrid(c, c, _axis(wlo, whi, nw), indexing="ij")
    return np.stack([cy, cx, w], -1).reshape(-1, 3)


def _radial_grid(xy: np.ndarray, y: np.ndarray, s: Mapping) -> np.ndarray:
    return _ring_grid(0.2, 0.8, s["centres"], 1.5, 5.0, s["frequencies"])


def _distinct_best(grid: np.ndarray, costs: np.ndarray, k: int, radius: np.ndarray) -> np.ndarray:
    """Indices of the k lowest-cost candidates, none inside another's box of half-widths
    ``radius``: one per basin, since the neighbours of a good candidate are nearly as good."""
    costs, picked = costs.copy(), []
    while len(picked) < k and np.isfinite(costs).any():
        i = int(np.argmin(costs))
        picked.append(i)
        costs[(np.abs(grid - grid[i]) <= radius).all(1)] = np.inf
    return np.array(picked, dtype=np.int64)


def _interference_grid(xy: np.ndarray, y: np.ndarray, s: Mapping) -> np.ndarray:
    """Candidates (c1y, c1x, c2y, c2x, w). A full 5-D grid fine enough for 5 cycles is too large
    (29^4 * 16 points), so one source comes first — the ``sources`` distinct best fits of a single
    ring — and the other is searched on the same centre grid at that ring's frequency."""
    n, nw = s["source_centres"], s["frequencies"]
    single = _ring_grid(-0.2, 1.2, n, 2.0, 5.0, nw)
    costs, _ = _grid_costs(FORMS["radial"], single, xy, y)
    step = np.array([1.4 / max(n - 1, 1)] * 2 + [3.0 / max(nw - 1, 1)])
    first = single[_distinct_best(single, costs, s["sources"], 2 * step)]  # (k, 3)
    c = _axis(-0.2, 1.2, n)
    second = np.stack(np.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)  # (m, 2)
    k, m = len(first), len(second)
    return np.concatenate(
        [np.repeat(first[:, :2], m, 0), np.tile(second, (k, 1)), np.repeat(first[:, 2:], m, 0)],
        -1,
    )


FORMS: dict[str, Form] = {
    "sinusoid": Form(_plane, _plane_grid),
    "radial": Form(_radial, _radial_grid),
    "interference": Form(_interference, _interference_grid),
}


def fit_form(
    family: str, obs_xy: np.ndarray, obs_val: np.ndarray, settings: Mapping | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares fit of ``family``'s form to (N, 2) coordinates and (N,) values.

    Returns (theta (d,), coef (k,), residual sum of squares). Raises KeyError for a family
    without a form.
    """
    form = FORMS[family]
    s = {**DEFAULTS, **(settings or {})}
    y = np.asarray(obs_val, dtype=np.float64)
    grid = form.candidates(obs_xy, y, s)
    costs, coefs = _grid_costs(form, grid, obs_xy, y)
    d = grid.shape[1]
    lo = np.r_[np.full(d, -form.bound), np.full(coefs.shape[1], -np.inf)]
    hi = -lo

    def residual(z):
        return form.basis(z[:d], obs_xy) @ z[d:] - y

    best = (grid[0], coefs[0], np.inf)
    for i in np.argsort(costs)[: s["starts"]]:
        z0 = np.clip(np.r_[grid[i], coefs[i]], lo, hi)
        r = least_squares(residual, z0, bounds=(lo, hi), max_nfev=s["max_nfev"],
                          ftol=1e-15, xtol=1e-15, gtol=1e-15)  # fmt: skip
        for theta, coef, cost in ((r.x[:d], r.x[d:], 2 * r.cost), (grid[i], coefs[i], costs[i])):
            if np.isfinite(cost) and cost < best[2]:  # never worse than the grid's own candidate
                best = (theta, coef, float(cost))
    return best


def family_fit(
    obs_xy: np.ndarray,
    obs_val: np.ndarray,
    query_xy: np.ndarray,
    *,
    family: str,
    settings: Mapping | None = None,
) -> np.ndarray | None:
    """Predict (Q,) values in [0, 1] at ``query_xy`` (Q, 2) from (N, 2) observations of a field of
    ``family`` by fitting that family's form; None (not applicable) for a family without one."""
    if family not in FORMS:
        return None
    theta, coef, _ = fit_form(family, obs_xy, obs_val, settings)
    pred = FORMS[family].basis(theta, query_xy) @ coef
    return np.clip(np.nan_to_num(pred, nan=0.5), 0.0, 1.0)
