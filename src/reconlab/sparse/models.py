"""Velocity networks for conditional flow matching over query values; picked by name.

Forward contract for every model (B fields, N observed tokens, Q queries)::

    out = model(obs_xy (B,N,2), obs_val (B,N), query_xy (B,Q,2), x_t (B,Q), t (B,), cond (B,Q)|None)
    out.velocity  # (B, Q)

``cond`` is the self-conditioning input (the previous estimate of the clean values) and is only
used when the model was built with ``self_cond=True``. Queries never attend to each other, so a
prediction at one pixel does not depend on which other pixels were queried with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from reconlab.sparse.encoding import FourierFeatures
from reconlab.sparse.gp import GPPosterior as KrigingPrior
from reconlab.sparse.gp import exact_gp


class ModelOutput(NamedTuple):
    velocity: torch.Tensor  # (B, Q) the network's output (a velocity or clean values)
    base: torch.Tensor | float = 0.0  # (B, Q) the gp prior's kriging estimate the output corrects


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1]: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(torch.linspace(0, math.log(1000.0), half, device=t.device))
    arg = t[:, None] * freqs[None]
    return torch.cat([arg.sin(), arg.cos()], -1)


def stochastic_depth(rate: float) -> nn.Module:
    """Stochastic depth (Huang et al. 2016): timm's ``DropPath`` drops a whole residual branch
    per sample with probability ``rate`` in training (kept ones scaled by 1 / (1 - rate)), the
    identity in eval. ``rate == 0`` gives ``nn.Identity``, as timm's own models do; timm is
    imported only then, since its import costs about 2 CPU-seconds per cell job."""
    if rate == 0:
        return nn.Identity()
    from timm.layers import DropPath

    return DropPath(rate)


class DistanceAttention(nn.Module):
    """Multi-head attention with an optional learnable per-head distance penalty.

    The bias is ``-exp(log_scale_h) * |q - k|^2 / spacing^2`` (spacing: 4 pixels, the typical gap
    between observed pixels at 5%). Heads start from penalties 0.03 .. 3, so some heads look
    locally (interpolation) and some globally (the field's overall pattern) from the first step.
    """

    def __init__(self, width: int, heads: int, distance_bias: bool, spacing: float) -> None:
        super().__init__()
        self.heads, self.spacing = heads, spacing
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.log_scale = None
        if distance_bias:
            self.log_scale = nn.Parameter(torch.linspace(math.log(0.03), math.log(3.0), heads))

    def forward(self, x, ctx, x_xy, ctx_xy):
        b, L, d = x.shape
        s = ctx.shape[1]
        q = self.q(x).view(b, L, self.heads, -1).transpose(1, 2)
        k, v = self.kv(ctx).view(b, s, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        mask = None
        if self.log_scale is not None:
            d2 = torch.cdist(x_xy, ctx_xy).pow(2) / self.spacing**2  # (B, L, S)
            mask = -self.log_scale.exp().view(1, -1, 1, 1) * d2.unsqueeze(1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, L, d))


class Block(nn.Module):
    """Pre-norm (cross-)attention + MLP block; optional AdaLN modulation by the time embedding."""

    def __init__(self, width, heads, distance_bias, spacing, drop_path=0.0, adaln=False):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=not adaln)
        self.norm_ctx = nn.LayerNorm(width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=not adaln)
        self.attn = DistanceAttention(width, heads, distance_bias, spacing)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )
        self.drop = stochastic_depth(drop_path)
        # AdaLN-Zero: shift/scale/gate for both branches from the time embedding; gates start at 0.
        self.ada = nn.Linear(width, 6 * width) if adaln else None
        if self.ada is not None:
            nn.init.zeros_(self.ada.weight)
            nn.init.zeros_(self.ada.bias)

    def forward(self, x, ctx, x_xy, ctx_xy, temb=None):
        c = self.norm_ctx(ctx)
        if self.ada is None:
            x = x + self.drop(self.attn(self.norm1(x), c, x_xy, ctx_xy))
            return x + self.drop(self.mlp(self.norm2(x)))
        s1, b1, g1, s2, b2, g2 = self.ada(temb)[:, None].chunk(6, -1)
        h = self.norm1(x) * (1 + s1) + b1
        x = x + self.drop((1 + g1) * self.attn(h, c, x_xy, ctx_xy))
        h = self.norm2(x) * (1 + s2) + b2
        return x + self.drop((1 + g2) * self.mlp(h))


KERNEL_WIDTHS_PX = (1.0, 2.0, 4.0, 8.0)
PRIORS = ("none", "smooth", "gp", "waves")


def kernel_smooth(obs_xy, obs_val, query_xy, widths: torch.Tensor) -> torch.Tensor:
    """Nadaraya-Watson (Gaussian-kernel) averages of the observed values at each query.

    (B,N,2), (B,N), (B,Q,2), (K,) bandwidths -> (B, Q, K). A fixed, parameter-free interpolation
    the network starts from instead of having to discover interpolation by itself.
    """
    d2 = torch.cdist(query_xy, obs_xy).pow(2)  # (B, Q, N)
    logits = -d2.unsqueeze(-1) / (2 * widths.pow(2))  # (B, Q, N, K)
    w = torch.softmax(logits, dim=2)
    return (w * obs_val[:, None, :, None]).sum(2)


def gp_prior(obs_xy, obs_val, query_xy, scales: torch.Tensor) -> KrigingPrior:
    """:func:`reconlab.sparse.gp.exact_gp` at several length scales, in fp32 whatever autocast.

    The evidence lets the network do what the GP baseline does by hand: weigh length scales
    by how well each explains the observations.
    """
    with torch.autocast(obs_xy.device.type, enabled=False):  # a linear solve: never in bf16
        return exact_gp(obs_xy.float(), obs_val.float(), query_xy.float(), scales)


class QueryTokens(nn.Module):
    """Shared embeddings: observed tokens = code(xy) + MLP(value); query tokens = code(xy) + x_t
    (+ a classical interpolation of the observations at the query, by ``prior``):

    - ``smooth``: Gaussian-kernel (Nadaraya-Watson) averages at bandwidths 1-8 px;
    - ``gp``: GP posterior means and standard deviations at length scales 1-8 px plus each
      scale's evidence; ``base`` then returns an evidence-and-context-weighted GP mean the
      network corrects (a residual), so training starts from kriging, not from zero;
    - ``waves``: the ``gp`` candidates plus least-squares fits of 1..``waves`` plane waves
      (:mod:`reconlab.sparse.waves`: mean, residual RMS and BIC evidence of each) in the base.
    """

    def __init__(
        self, width, fourier: dict, self_cond: bool, prior="none", size=32, generator=None,
        waves: int = 4,
    ):  # fmt: skip
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"sparse.model.kernel_prior: {prior!r}; choose one of {list(PRIORS)}")
        self.code = FourierFeatures(width, generator=generator, **fourier)
        self.value = nn.Sequential(nn.Linear(1, width), nn.GELU(), nn.Linear(width, width))
        self.self_cond = self_cond
        self.state = nn.Linear(2 if self_cond else 1, width)
        self.time = nn.Sequential(nn.Linear(32, width), nn.GELU(), nn.Linear(width, width))
        self.prior_kind = prior
        self.prior = None
        self._gp_memo: tuple | None = None  # (batch tensors, KrigingPrior) of the last batch
        self.waves = waves if prior == "waves" else 0
        k = len(KERNEL_WIDTHS_PX) + self.waves  # candidates of the prior
        if prior != "none":
            self.register_buffer("widths", torch.tensor(KERNEL_WIDTHS_PX) / size)
            n_in = len(KERNEL_WIDTHS_PX) if prior == "smooth" else 3 * k
            self.prior = nn.Sequential(nn.Linear(n_in, width), nn.GELU(), nn.Linear(width, width))
        if prior in ("gp", "waves"):
            self.gate = nn.Linear(width, k)  # per-query weights of the GP means (residual base)

    def forward(self, obs_xy, obs_val, query_xy, x_t, t, cond):
        obs = self.code(obs_xy) + self.value(obs_val.unsqueeze(-1) - 0.5)
        state = x_t.unsqueeze(-1)
        if self.self_cond:
            c = torch.zeros_like(x_t) if cond is None else cond
            state = torch.cat([state, c.unsqueeze(-1)], -1)
        temb = self.time(time_embedding(t, 32))
        q = self.code(query_xy) + self.state(state)
        base = None
        if self.prior_kind == "smooth":
            q = q + self.prior(kernel_smooth(obs_xy, obs_val, query_xy, self.widths) - 0.5)
        elif self.prior_kind in ("gp", "waves"):
            gp = self._gp_once_per_batch(obs_xy, obs_val, query_xy)
            ev = gp.evidence[:, None].expand_as(gp.mean)
            q = q + self.prior(torch.cat([gp.mean - 0.5, gp.std, ev], -1))
            base = gp.mean, ev
            if self.waves:  # the correction is scaled by the prior's own uncertainty
                base = (*base, gp.std * obs_val.std(1).clamp_min(1e-3)[:, None, None].to(gp.std))
        return obs, q, temb, base

    def _gp_once_per_batch(self, obs_xy, obs_val, query_xy) -> KrigingPrior:
        """:func:`gp_prior` of a batch, computed once however often the batch is seen.

        The prior depends only on the observations and query positions (no parameter, no
        x_t, no t), so the ODE steps of sampling and the extra forward passes of self-conditioning
        and consistency reuse it: measured 23% of a cell's run time before (150 solves for 30
        training steps plus evaluation, now 1 per batch). The batch tensors are held, so an
        identity match cannot be a recycled id; a new batch replaces the entry.
        """
        key = (obs_xy, obs_val, query_xy)
        if self._gp_memo is not None and all(
            a is b for a, b in zip(key, self._gp_memo[0], strict=True)
        ):
            return self._gp_memo[1]
        gp = gp_prior(obs_xy, obs_val, query_xy, self.widths)
        if self.waves:  # the plane-wave fits join the GP candidates
            from reconlab.sparse.waves import fit_waves, wave_means

            fit = fit_waves(obs_xy, obs_val, self.waves)
            rms = fit.rms.to(gp.std.dtype)[:, None].expand(-1, query_xy.shape[1], -1)
            gp = KrigingPrior(
                torch.cat([gp.mean, wave_means(fit, query_xy).to(gp.mean.dtype)], -1),
                torch.cat([gp.std, rms], -1),
                torch.cat([gp.evidence, fit.evidence.to(gp.evidence.dtype)], -1),
            )
        self._gp_memo = (key, gp)
        return gp

    def residual(self, q: torch.Tensor, prior) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """(base, scale) at each query, each (B, Q): the network's output times ``scale`` corrects
        ``base``. ``waves``: scale = the weighted predictive std of the candidates (GP posterior
        std, fit residual RMS) in field units, so an exact fit is not disturbed; else 1."""
        if prior is None:
            return 0.0, 1.0
        mean, evidence, *std = prior
        weights = torch.softmax(self.gate(q) + evidence, -1)
        scale = (weights * std[0]).sum(-1) if std else 1.0
        return (weights * mean).sum(-1), scale


class SparseTransformer(nn.Module):
    """Observed tokens: self-attention encoder. Queries: cross-attention onto observed tokens only."""

    def __init__(
        self,
        width: int = 64,
        heads: int = 4,
        enc_layers: int = 2,
        dec_layers: int = 2,
        distance_bias: bool = True,
        kernel_prior: str = "none",
        fourier: dict | None = None,
        self_cond: bool = False,
        adaln: bool = False,
        drop_path: float = 0.0,
        size: int = 32,
        generator: torch.Generator | None = None,
        waves: int = 4,
    ) -> None:
        super().__init__()
        spacing = 4.0 / size
        self.adaln = adaln
        self.tokens = QueryTokens(
            width, fourier or {}, self_cond, kernel_prior, size, generator, waves
        )
        self.encoder = nn.ModuleList(
            Block(width, heads, distance_bias, spacing, drop_path) for _ in range(enc_layers)
        )
        self.decoder = nn.ModuleList(
            Block(width, heads, distance_bias, spacing, drop_path, adaln) for _ in range(dec_layers)
        )
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 1))
        if kernel_prior in (
            "gp",
            "waves",
        ):  # start exactly at the prior's base: the head learns corrections
            nn.init.zeros_(self.head[1].weight)
            nn.init.zeros_(self.head[1].bias)

    def forward(self, obs_xy, obs_val, query_xy, x_t, t, cond=None) -> ModelOutput:
        obs, q, temb, prior = self.tokens(obs_xy, obs_val, query_xy, x_t, t, cond)
        for block in self.encoder:
            obs = block(obs, obs, obs_xy, obs_xy)
        if not self.adaln:  # plain conditioning: add the time embedding to every query token
            q = q + temb[:, None]
        for block in self.decoder:
            q = block(q, obs, query_xy, obs_xy, temb)
        base, scale = self.tokens.residual(q, prior)
        return ModelOutput(self.head(q).squeeze(-1) * scale, base)


def hilbert_index(xy: torch.Tensor, size: int) -> torch.Tensor:
    """Position along a Hilbert curve over a size x size grid (size a power of 2): (..., 2) -> (...)."""
    y = (xy[..., 0] * size).long().clamp(0, size - 1)
    x = (xy[..., 1] * size).long().clamp(0, size - 1)
    d = torch.zeros_like(x)
    s = size // 2
    while s > 0:
        rx = ((x & s) > 0).long()
        ry = ((y & s) > 0).long()
        d = d + s * s * ((3 * rx) ^ ry)
        # rotate the quadrant so the curve stays continuous
        flip = (ry == 0) & (rx == 1)
        x = torch.where(flip, s - 1 - x, x)
        y = torch.where(flip, s - 1 - y, y)
        swap = ry == 0
        x, y = torch.where(swap, y, x), torch.where(swap, x, y)
        s //= 2
    return d


class SparseMamba(nn.Module):
    """Mamba (mambapy, pure PyTorch) over [observed tokens; query tokens], each in Hilbert order.

    A causal scan sees every observed token before any query; queries are ordered along the
    space-filling curve so neighbouring pixels stay close in the sequence.
    """

    def __init__(
        self,
        width: int = 64,
        enc_layers: int = 1,
        dec_layers: int = 1,
        kernel_prior: str = "none",
        fourier: dict | None = None,
        self_cond: bool = False,
        adaln: bool = False,
        drop_path: float = 0.0,
        size: int = 32,
        generator: torch.Generator | None = None,
        waves: int = 4,
        **_: object,
    ) -> None:
        super().__init__()
        from mambapy.mamba import Mamba, MambaConfig

        self.size = size
        self.tokens = QueryTokens(
            width, fourier or {}, self_cond, kernel_prior, size, generator, waves
        )
        self.mamba = Mamba(MambaConfig(d_model=width, n_layers=enc_layers + dec_layers, pscan=True))
        self.drop = stochastic_depth(drop_path)
        self.norm = nn.LayerNorm(width, elementwise_affine=not adaln)
        self.ada = nn.Linear(width, 2 * width) if adaln else None
        self.head = nn.Linear(width, 1)
        if kernel_prior in ("gp", "waves"):
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, obs_xy, obs_val, query_xy, x_t, t, cond=None) -> ModelOutput:
        obs, q, temb, prior = self.tokens(obs_xy, obs_val, query_xy, x_t, t, cond)
        o_order = hilbert_index(obs_xy, self.size).argsort(1)
        q_order = hilbert_index(query_xy, self.size).argsort(1)
        obs = obs.gather(1, o_order[..., None].expand_as(obs))
        q = q.gather(1, q_order[..., None].expand_as(q))
        seq = torch.cat([obs, q], 1) + temb[:, None]
        h = seq + self.drop(self.mamba(seq))
        h = self.norm(h[:, obs.shape[1] :])
        if self.ada is not None:
            scale, shift = self.ada(temb)[:, None].chunk(2, -1)
            h = h * (1 + scale) + shift
        base, scale = self.tokens.residual(h, prior)
        v = self.head(h).squeeze(-1) * scale
        if torch.is_tensor(base):
            base = torch.empty_like(base).scatter_(1, q_order, base)
        return ModelOutput(torch.empty_like(v).scatter_(1, q_order, v), base)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "transformer": SparseTransformer,
    "mamba": SparseMamba,
}


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered velocity network by name."""
    if name not in MODELS:
        raise ValueError(f"sparse.model.backbone: {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](**kwargs)
