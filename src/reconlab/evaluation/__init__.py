"""Evaluation shared by the studies: image-quality metrics and pretrained-metric policy."""
