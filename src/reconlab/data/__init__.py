"""Data stage: photos to train/val/test crops, and synthetic 2-D fields."""
