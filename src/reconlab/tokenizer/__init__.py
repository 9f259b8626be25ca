"""Tokenizer study: conv encoder -> vector quantizer -> learned conv decoder, evaluated against JPEG.

Modules: ``model`` (variants and the network), ``quantizers`` (vector-quantize-pytorch wrappers),
``losses``, ``photos`` (source photos, training crops), ``train``, ``codebook`` (usage,
perplexity, dead codes), ``tiling`` (tiled encode/decode), ``jpeg`` (Pillow baseline), ``memory``
(peak memory), ``native`` (native-resolution evaluation), ``frechet`` (FID, FDD), ``evaluate``,
``rd`` (rate-distortion per family), ``plots``.
"""
