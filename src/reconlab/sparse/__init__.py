"""Sparse-query study: conditional flow matching from 5% of a 32x32 field's pixels.

Modules: ``task`` (masks, query sampling), ``encoding`` (Fourier features), ``models``
(transformer with query->observation cross-attention and a distance bias; Mamba over a
Hilbert-ordered sequence; registry), ``flow`` (loss, ODE sampling), ``techniques`` (the ten
switches), ``train`` (the loop, evaluation), ``baselines`` (griddata, RBF, exact GP), ``grid``
(cells, greedy rounds, ranking), ``study`` / ``aggregate`` (what the rules run), ``plots``.

What made the model learn on this CPU (measured in short runs, batch 32): queries attend only to
observed tokens (cross-attention); a learnable per-head distance penalty (direct regression,
sinusoid family, 400 steps: 15.4 dB with it, 11.5 dB without); lr 3e-3 with cosine decay (17.0 dB
vs 15.4 dB at 1e-3); Gaussian-kernel averages of the observations as a query input; and reading
the network output as the clean values (all families, 300 steps, with the kernel input: 13.1 dB
with x1-prediction vs 10.7 dB with velocity output).
"""
