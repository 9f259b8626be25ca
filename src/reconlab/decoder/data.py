"""What the decoder trains on: feature grids (possibly memory-mapped) paired with RGB targets.

Features stay where they are (a safetensors cache is memory-mapped, not loaded); each batch
gathers its rows, concatenates the requested tensors along channels and moves them to the
device. Targets are kept as uint8 (4x less memory than float) and converted per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange

from reconlab.data.images import verify_prepared


@dataclass(frozen=True)
class DecoderDataset:
    """Rows of ``features[k]`` (N, h, w, D_k) aligned with ``images`` (N, 3, H, W) uint8."""

    features: Sequence[torch.Tensor]
    images: torch.Tensor

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("DecoderDataset needs at least one feature tensor")
        n, h, w = self.features[0].shape[:3]
        for f in self.features:
            if f.ndim != 4 or tuple(f.shape[:3]) != (n, h, w):
                raise ValueError(
                    f"feature tensors must all be (N={n}, h={h}, w={w}, D); got {tuple(f.shape)}"
                )
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or len(self.images) != n:
            raise ValueError(
                f"images must be uint8 (N={n}, 3, H, W); got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return sum(f.shape[-1] for f in self.features)

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.features[0].shape[1:3])

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])

    def batch_features(
        self, idx: torch.Tensor, device: torch.device, channels_last: bool = False
    ) -> torch.Tensor:
        """(B, C, h, w) float32 features of rows ``idx`` on ``device``."""
        parts = [f[idx].to(device=device, dtype=torch.float32) for f in self.features]
        x = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
        # The cache stores tokens as (h, w, D); permuting gives an NHWC-strided NCHW view,
        # which is exactly channels_last, so it only needs a copy for the plain layout.
        x = rearrange(x, "b h w c -> b c h w")
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    def batch_images(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(B, 3, H, W) float32 targets in [0, 1] of rows ``idx`` on ``device``."""
        return self.images[idx].to(device=device, dtype=torch.float32) / 255.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float images in [0, 1] -> uint8 (rounded)."""
    return (images.clamp(0, 1) * 255.0).round().to(torch.uint8)


def load_targets(root: Path, files: Sequence[str], image_size: Sequence[int]) -> torch.Tensor:
    """The RGB targets of a cache split: ``root / file`` resized/cropped like the features were.

    Uses the feature stage's own loader, so a target and its features always see the same pixels.
    """
    from reconlab.features.images import load_image_tensor

    size = tuple(int(s) for s in image_size)
    out = torch.empty((len(files), 3, *size), dtype=torch.uint8)
    for i, name in enumerate(files):
        path = Path(root) / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: listed in the feature cache but missing")
        out[i] = to_uint8(load_image_tensor(path, size))
    return out


def load_decoder_dataset(
    cache, split: str, inputs: Sequence[str], prepared: Path
) -> DecoderDataset | None:
    """Features ``inputs`` of one cache split, with its RGB targets; None when the split is empty.

    Args:
        cache: an open :class:`reconlab.features.cache.FeatureCache`.
        inputs: tensor names (``decoder.inputs``), concatenated along channels.
        prepared: the folder the cache's file names are relative to (``data/prepared``).
    """
    if split not in cache.index["splits"]:
        return None
    s = cache.split(split)
    if (Path(prepared) / "manifest.csv").is_file():
        verify_prepared(prepared, s.files)  # corrupt targets are named, never trained on
    if len(s) == 0:
        return None
    features = []
    for name in inputs:
        if name not in s.names:
            raise ValueError(
                f"decoder.inputs: {name!r} is not in {cache.index_path} (cached tensors: "
                f"{s.names}); add its layer to features.backbones[*].layers"
            )
        features.append(s.tensor(name))
    return DecoderDataset(features, load_targets(prepared, s.files, cache.index["image_size"]))
