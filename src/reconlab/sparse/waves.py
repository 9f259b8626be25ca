"""A family-agnostic structured prior: sums of waves fitted to the observed pixels.

For each field the observed values (standardised) are explained by a constant plus ``j`` wave
atoms ``a cos(phi) + b sin(phi)`` for ``j = 1 .. n_waves``, each atom a plane wave
``phi = 2 pi k.p`` (wave vector ``k`` in cycles per field) or, with ``rings``, a circular wave
``phi = 2 pi w |p - m|`` (centre ``m``, ``w`` cycles per unit radius); ``p = (y, x)`` in (0, 1).
The prior is not told a field's family: every field gets the same dictionary. Atoms are added
greedily (matching pursuit, Mallat & Zhang 1993): every atom of a grid is scored by the sum of
squares its linear least-squares fit explains in the current residual; the best is added and all
parameters of the ``j``-atom model (atom parameters, amplitudes, offset) are refined jointly by
damped Gauss-Newton (Levenberg-Marquardt) steps. Everything is batched over fields in torch,
float64, so the prior runs inside training on every batch.

Each ``j``-atom fit is one candidate of the prior, with an evidence score the network can weigh
fits by: the per-observation Gaussian log-likelihood at the maximum-likelihood noise level with
the BIC penalty (Schwarz 1978), ``-0.5 log(rss / N) - 0.5 - P log(N) / (2 N)`` (``P``: the fit's
parameters) in standardised units, the scale of the GP evidence of
:func:`reconlab.sparse.models.gp_prior`. The model predicts a correction to the
evidence-weighted mean of all candidates.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

TAU = 2 * math.pi
RSS_FLOOR = 1e-8  # per-observation residual floor: caps the evidence of an exact fit
R_MIN = 1e-6  # radius floor of a circular wave (its phase is not differentiable at the centre)


class WaveFit(NamedTuple):
    """Fitted parameters of the 1..J-atom models of B fields (J = n_waves).

    ``theta[..., :]`` is ``(ky, kx, 0)`` for a plane wave and ``(my, mx, w)`` for a circular one.
    """

    theta: torch.Tensor  # (B, J, J, 3) atom parameters of model j (rows beyond j are zero)
    ring: torch.Tensor  # (B, J, J) True where the atom is a circular wave
    amp: torch.Tensor  # (B, J, 2J+1) amplitudes [cos_1, sin_1, ..., 1] (zeros beyond model j)
    evidence: torch.Tensor  # (B, J) BIC-penalised log-likelihood per observation
    rms: torch.Tensor  # (B, J) residual RMS on the observations (standardised units)
    mu: torch.Tensor  # (B, 1) mean of the observed values
    sd: torch.Tensor  # (B, 1) their standard deviation


def wave_grid(k_max: float, step: float, device=None) -> torch.Tensor:
    """(C, 3) candidate plane waves (ky, kx, 0) in cycles per field: ky in [0, k_max], kx in
    [-k_max, k_max], without the zero vector and the duplicates -k of the ky = 0 row."""
    n = int(round(k_max / step))
    ky = torch.arange(0, n + 1, dtype=torch.float64, device=device) * step
    kx = torch.arange(-n, n + 1, dtype=torch.float64, device=device) * step
    g = torch.cartesian_prod(ky, kx)
    g = g[(g[:, 0] > 0) | (g[:, 1] > 0)]
    return torch.cat([g, torch.zeros_like(g[:, :1])], 1)


def ring_grid(centres: int, frequencies: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate circular waves: ``(C, 2)`` centres (my, mx) on a ``centres`` x ``centres`` grid
    over [-0.25, 1.25]^2 (sources may lie outside the field) and ``(F,)`` frequencies w in
    [1, 6] cycles per unit radius; every centre is tried with every frequency."""
    c = torch.linspace(-0.25, 1.25, centres, dtype=torch.float64, device=device)
    w = torch.linspace(1.0, 6.0, frequencies, dtype=torch.float64, device=device)
    return torch.cartesian_prod(c, c), w


def _phase(xy: torch.Tensor, theta: torch.Tensor, ring: torch.Tensor) -> torch.Tensor:
    """xy (B, N, 2), theta (B, j, 3), ring (B, j) -> phases (B, N, j)."""
    plane = TAU * xy @ theta[..., :2].transpose(1, 2)
    r = (xy.unsqueeze(2) - theta[:, None, :, :2]).norm(dim=-1).clamp_min(R_MIN)
    return torch.where(ring[:, None], TAU * theta[:, None, :, 2] * r, plane)


def design(xy: torch.Tensor, theta: torch.Tensor, ring: torch.Tensor) -> torch.Tensor:
    """Columns [cos_1, sin_1, ..., cos_j, sin_j, 1]: (B, N, 2j+1)."""
    phase = _phase(xy, theta, ring)
    cols = torch.stack([phase.cos(), phase.sin()], -1).flatten(-2)
    return torch.cat([cols, torch.ones_like(xy[..., :1])], -1)


def _phase_jacobian(xy, theta, ring) -> torch.Tensor:
    """d phase / d theta: (B, N, j, 3) (zero for a plane wave's unused third parameter)."""
    plane = TAU * torch.cat([xy, torch.zeros_like(xy[..., :1])], -1).unsqueeze(2)
    d = xy.unsqueeze(2) - theta[:, None, :, :2]  # (B, N, j, 2)
    r = d.norm(dim=-1, keepdim=True).clamp_min(R_MIN)
    w = theta[:, None, :, 2:3]
    circ = TAU * torch.cat([-w * d / r, r], -1)
    return torch.where(ring[:, None, :, None], circ, plane.expand_as(circ))


def _lstsq(a: torch.Tensor, y: torch.Tensor, ridge: float = 1e-9) -> torch.Tensor:
    """Least-squares amplitudes of a (..., N, P) against y (..., N): (..., P)."""
    ata = a.transpose(-1, -2) @ a
    ata = ata + ridge * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return torch.linalg.solve(ata, (a.transpose(-1, -2) @ y.unsqueeze(-1))).squeeze(-1)


def _explained(phase: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Sum of squares of the residual r (B, N) explained by [cos, sin, 1] of each candidate
    phase (B, N, C): the closed-form 2x2 normal equations on centred columns. (B, C)."""
    c, s = phase.cos(), phase.sin()
    c = c - c.mean(1, keepdim=True)  # the offset is fitted too: centre the columns
    s = s - s.mean(1, keepdim=True)
    cc, ss, cs = (c * c).sum(1), (s * s).sum(1), (c * s).sum(1)
    u, v = (c * r[..., None]).sum(1), (s * r[..., None]).sum(1)
    det = (cc * ss - cs * cs).clamp_min(1e-6)
    return (ss * u * u - 2 * cs * u * v + cc * v * v) / det


def _best_new_atom(xy, residual, planes, rings):
    """(B, 3) parameters and (B,) ring flags of the grid atom that explains most of the
    residual: plane-wave grid ``planes`` (C, 3), circular-wave grid ``rings`` ((M, 2) centres,
    (F,) frequencies) or None. Scored in float32 (a ranking; the refinement is float64)."""
    b = len(xy)
    xy32 = xy.float()
    r = (residual - residual.mean(1, keepdim=True)).float()
    gain, idx = _explained(TAU * xy32 @ planes[:, :2].float().T, r).max(1)
    best, best_ring = planes[idx], torch.zeros(b, dtype=torch.bool, device=xy.device)
    if rings is not None:
        centres, freqs = rings
        dist = torch.cdist(xy32, centres.float()[None].expand(b, -1, -1))  # (B, N, M)
        phase = TAU * (dist.unsqueeze(-1) * freqs.float()).flatten(2)  # (B, N, M*F)
        ring_gain, ring_idx = _explained(phase, r).max(1)
        m, f = ring_idx // len(freqs), ring_idx % len(freqs)
        ring_theta = torch.cat([centres[m], freqs[f, None]], 1)
        best_ring = ring_gain > gain
        best = torch.where(best_ring[:, None], ring_theta, best)
    return best, best_ring


def _refine(xy, y, theta, ring, iterations: int):
    """Levenberg-Marquardt over atom parameters and amplitudes; per-field damping, steps that do
    not lower the residual are rejected. Returns (theta (B,j,3), amp (B,2j+1), rss (B,))."""
    amp = _lstsq(design(xy, theta, ring), y)
    rss = (y - (design(xy, theta, ring) @ amp.unsqueeze(-1)).squeeze(-1)).pow(2).sum(-1)
    lam = torch.full_like(rss, 1e-3)
    j = theta.shape[1]
    for _ in range(iterations):
        a = design(xy, theta, ring)  # (B, N, 2j+1)
        r = y - (a @ amp.unsqueeze(-1)).squeeze(-1)
        c, s = a[..., 0 : 2 * j : 2], a[..., 1 : 2 * j : 2]  # (B, N, j)
        ac, as_ = amp[:, 0 : 2 * j : 2], amp[:, 1 : 2 * j : 2]  # (B, j)
        df = -ac[:, None] * s + as_[:, None] * c  # d f / d phase: (B, N, j)
        jt = (df.unsqueeze(-1) * _phase_jacobian(xy, theta, ring)).flatten(-2)  # (B, N, 3j)
        jac = torch.cat([jt, a], -1)  # (B, N, 5j+1)
        jtj = jac.transpose(1, 2) @ jac
        damp = jtj.diagonal(dim1=1, dim2=2).clamp_min(1e-6)
        step = torch.linalg.solve(
            jtj + lam[:, None, None] * torch.diag_embed(damp),
            (jac.transpose(1, 2) @ r.unsqueeze(-1)),
        ).squeeze(-1)
        theta_new = theta + step[:, : 3 * j].view(-1, j, 3)
        amp_new = amp + step[:, 3 * j :]
        r_new = y - (design(xy, theta_new, ring) @ amp_new.unsqueeze(-1)).squeeze(-1)
        rss_new = r_new.pow(2).sum(-1)
        ok = torch.isfinite(rss_new) & (rss_new < rss)
        theta = torch.where(ok[:, None, None], theta_new, theta)
        amp = torch.where(ok[:, None], amp_new, amp)
        rss = torch.where(ok, rss_new, rss)
        lam = torch.where(ok, lam * 0.3, lam * 10).clamp(1e-9, 1e9)
    return theta, amp, rss


def fit_waves(
    obs_xy: torch.Tensor,
    obs_val: torch.Tensor,
    n_waves: int = 4,
    rings: bool = True,
    k_max: float = 6.0,
    step: float = 0.5,
    centres: int = 9,
    frequencies: int = 8,
    iterations: int = 15,
) -> WaveFit:
    """Fit 1..``n_waves`` wave atoms to each field's observations.

    Args:
        obs_xy: (B, N, 2) observed coordinates (y, x) in (0, 1).
        obs_val: (B, N) observed values.
        n_waves: largest number of atoms J (each j <= J is one candidate).
        rings: also search circular waves (else plane waves only).
        k_max: largest plane-wave vector component searched, in cycles per field.
        step: plane-wave grid spacing in cycles per field (0.5: half the width of the
            least-squares peak of a field one unit across; the refinement does the rest).
        centres: circular-wave centres per axis of the search grid; frequencies: its w values
            (9 x 9 x 8: 7 ms per field for 4 atoms on one EPYC Zen 4 core, mean 68 / 65 dB on
            the radial / interference test fields; 13 x 13 x 11: 17 ms, 86 / 71 dB). A ring whose centre is far
            from every grid point can be missed (the refinement's basin is narrow at high ``w``);
            the GP candidates and the evidence weighting cover those fields.
        iterations: Levenberg-Marquardt steps after each added atom.

    Returns:
        :class:`WaveFit`. Runs in float64 with autocast off; raises ValueError for n_waves < 1.
    """
    if n_waves < 1:
        raise ValueError(f"sparse waves: n_waves must be >= 1, got {n_waves}")
    with torch.no_grad(), torch.autocast(obs_xy.device.type, enabled=False):
        xy, v = obs_xy.double(), obs_val.double()
        b, n = v.shape
        mu = v.mean(1, keepdim=True)
        sd = v.std(1, keepdim=True).clamp_min(1e-3)
        y = (v - mu) / sd
        planes = wave_grid(k_max, step, xy.device)
        circles = ring_grid(centres, frequencies, xy.device) if rings else None
        thetas = xy.new_zeros(b, n_waves, n_waves, 3)
        flags = torch.zeros(b, n_waves, n_waves, dtype=torch.bool, device=xy.device)
        amps = xy.new_zeros(b, n_waves, 2 * n_waves + 1)
        evidence, rms = xy.new_empty(b, n_waves), xy.new_empty(b, n_waves)
        theta, ring = xy.new_zeros(b, 0, 3), flags[:, 0, :0]
        residual = y
        for j in range(1, n_waves + 1):
            new, new_ring = _best_new_atom(xy, residual, planes, circles)
            theta = torch.cat([theta, new[:, None]], 1)
            ring = torch.cat([ring, new_ring[:, None]], 1)
            theta, amp, rss = _refine(xy, y, theta, ring, iterations)
            residual = y - (design(xy, theta, ring) @ amp.unsqueeze(-1)).squeeze(-1)
            thetas[:, j - 1, :j], flags[:, j - 1, :j] = theta, ring
            amps[:, j - 1, : 2 * j], amps[:, j - 1, -1] = amp[:, :-1], amp[:, -1]
            per_obs = (rss / n).clamp_min(RSS_FLOOR)
            rms[:, j - 1] = per_obs.sqrt()
            params = 1 + 4 * j + ring.sum(1)  # offset, 2 amplitudes + 2 (plane) or 3 (ring) each
            evidence[:, j - 1] = -0.5 * per_obs.log() - 0.5 - params * math.log(n) / (2 * n)
        return WaveFit(thetas, flags, amps, evidence, rms, mu, sd)


def wave_means(fit: WaveFit, query_xy: torch.Tensor) -> torch.Tensor:
    """(B, Q, J) each j-atom model's values at ``query_xy`` (B, Q, 2), in the fields' units."""
    with torch.autocast(query_xy.device.type, enabled=False):
        qxy = query_xy.double()
        j_max = fit.theta.shape[1]
        # every model's atoms at once: (B, Q, 2 J^2 + 1)
        a = design(qxy, fit.theta.flatten(1, 2), fit.ring.flatten(1, 2))
        out = []
        for j in range(j_max):
            cols = a[..., 2 * j_max * j : 2 * j_max * (j + 1)]
            amp = fit.amp[:, j]
            out.append((cols @ amp[:, :-1].unsqueeze(-1)).squeeze(-1) + amp[:, -1:])
        z = torch.stack(out, -1)  # (B, Q, J) standardised
        return (fit.mu[:, None] + fit.sd[:, None] * z).to(query_xy.dtype)


def fit_predict(obs_xy, obs_val, query_xy, **settings) -> torch.Tensor:
    """Best-evidence model at the queries: (B, Q) (a stand-alone interpolation)."""
    fit = fit_waves(obs_xy, obs_val, **settings)
    means = wave_means(fit, query_xy)
    pick = fit.evidence.argmax(1)
    return means.gather(2, pick[:, None, None].expand(-1, means.shape[1], 1)).squeeze(-1)
