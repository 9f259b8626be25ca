"""The eleven techniques of the study, each one switch in ``sparse.techniques``.

A cell of the grid is a set of technique names; its settings come from ``sparse.techniques.<name>``
and only the techniques a cell uses enter its parameters (so editing one technique's settings
reruns only the cells that use it). Where each switch acts:

=============  =========================================================================
reflow         loss: after ``start`` of training, regress straight paths between noise and
               the frozen model's own samples (rectified flow, 2-rectification)
multiscale     model: octave Fourier features instead of random ones
consistency    loss: clean-value estimates from two times on one path must agree
fft_loss       loss: non-uniform DFT of the clean estimate at the queries vs. of the truth
adaln          model: AdaLN-Zero time conditioning in the query blocks
self_cond      model + loss: previous clean estimate as an extra input (half the steps)
ema            training: evaluate an exponential moving average of the weights
cosine_t       loss + sampling: t concentrated near 0 and 1, cosine-spaced ODE grid
clip_warmup    training: linear LR warm-up, then cosine decay; gradient-norm clipping
droppath       model: stochastic depth on every residual branch
wave_prior     model: least-squares fits of 1..``waves`` plane or circular waves join the GP prior's
               candidates (``kernel_prior: waves``; :mod:`reconlab.sparse.waves`)
=============  =========================================================================

Each technique's settings, their defaults and ranges are written once, in the schema
(``workflow/schemas/params.schema.yaml``, ``sparse.techniques``).

The registry here imports nothing heavy (the Snakefile reads it at DAG-build time); the tensor
math of the techniques lives beside the model that uses it (:mod:`reconlab.sparse.flow`).
"""

from __future__ import annotations

TECHNIQUES = (
    "reflow",
    "multiscale",
    "consistency",
    "fft_loss",
    "adaln",
    "self_cond",
    "ema",
    "cosine_t",
    "clip_warmup",
    "droppath",
    "wave_prior",
)


def check_techniques(names) -> tuple[str, ...]:
    """Validate and order technique names canonically (the order of :data:`TECHNIQUES`)."""
    unknown = sorted(set(names) - set(TECHNIQUES))
    if unknown:
        raise ValueError(f"sparse: unknown technique(s) {unknown}; choose from {list(TECHNIQUES)}")
    return tuple(t for t in TECHNIQUES if t in set(names))
