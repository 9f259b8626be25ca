"""DINOv2 / DINOv3 patch features: backbones, extraction, and the verifiable on-disk cache."""
