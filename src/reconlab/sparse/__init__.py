"""Sparse-query study: conditional flow matching from 5% of a 32x32 field's pixels.

Modules: ``task`` (masks, query sampling), ``encoding`` (Fourier features), ``models``
(transformer with query->observation cross-attention and a distance bias; Mamba over a
Hilbert-ordered sequence; the kriging prior; registry), ``flow`` (loss, ODE sampling),
``techniques`` (the ten switches), ``train`` (the loop, evaluation), ``baselines`` (griddata, RBF,
exact GP), ``family_fit`` (the family-aware limit: each family's own form by least squares),
``grid`` (cells, greedy rounds, ranking), ``study`` / ``aggregate`` (what the rules
run), ``plots``.

What made the model learn on this CPU (measured in short runs on the val split, all families):

- queries attend only to observed tokens (cross-attention) with a learnable per-head distance
  penalty (direct regression, sinusoid family, 400 steps: 15.4 dB with it, 11.5 dB without);
- reading the network output as the clean values (x1-prediction; 300 steps: 13.1 vs 10.7 dB);
- the ``gp`` kernel prior: exact GP posterior means/stds at length scales 1-8 px and their
  evidence as query inputs, the output a learned correction of their weighted mean (600 steps,
  batch 32: 17.25 dB vs 12.91 dB with Gaussian-kernel averages; the exact GP baseline: 16.95);
- starting the ODE at x0 = 0 (``sampler.start: median``): queries are independent 1-D flows,
  so this lands on each pixel's posterior median instead of a random sample (17.25 vs 15.69 dB).

Without the first three (the earlier study's plain model) a model trained 600 steps predicts
the field mean (11.39 dB vs 11.37 for the observed mean); on fixed query pixels it does worse
than the mean (10.46 dB): the ``fixedq`` ablation.
"""
