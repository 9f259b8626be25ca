"""Dense-feature diagnostics of cached DINOv2 / DINOv3 patch tokens.

PCA maps (:mod:`.pca`), neighbour smoothness (:mod:`.smoothness`), reference-patch cosine maps
(:mod:`.reference`), retrieval by source photo (:mod:`.retrieval`), equal-grid resampling
(:mod:`.grid`), the per-backbone and pairwise runs (:mod:`.run`) and their figures (:mod:`.figures`).
No model is run here: everything reads the feature cache.
"""
