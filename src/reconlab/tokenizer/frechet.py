"""FID and FDD of a tokenizer's reconstructions against their targets, on patches.

* FID: torchmetrics' ``FrechetInceptionDistance`` (torch-fidelity's InceptionV3; 2048-d pool
  features, or the 64 / 192 / 768-d earlier layers with ``inception_features``, stored as
  ``fid_features``: a 2048 x 2048 matrix square root costs seconds per call) built from an
  Inception weights file (``feature_extractor_weights_path``), which
  :func:`reconlab.weights.inception_weights_file` gives for ``pretrained``, ``random`` or a file.
* FDD: the Fréchet distance of DINOv2 features as dgm-eval defines it (Stein et al. 2023):
  images resized to 224 px (bicubic), ImageNet-normalised, the CLS token after the final norm;
  from the pipeline's own DINOv2 backbone (an id of ``features.backbones``) with its weights.

Samples are non-overlapping ``patch`` x ``patch`` squares of every evaluated image (patch FID,
as in HiFiC, Mentzer et al. 2020; an image smaller than a patch is one sample), at most
``max_samples`` of them (a seeded subset), the same squares of target and reconstruction.
A percentile bootstrap over the paired samples gives ``*_ci``. A few dozen patches give a
noisy, biased estimate that is not comparable to FID on thousands of images: the sample count
is stored beside every value. Random weights are computed and marked untrained.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reconlab.evaluation.frechet import bootstrap_interval, frechet_distance
from reconlab.evaluation.image_metrics import not_computed
from reconlab.tokenizer.params import frechet_backbone  # noqa: F401 - re-exported

FDD_SIZE = 224  # dgm-eval's DINOv2 input size
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class FrechetNets:
    """The two feature networks (None when not configured) and their weights identities."""

    fid: nn.Module | None  # torchmetrics FrechetInceptionDistance
    fid_weights: str
    fid_features: int  # its Inception feature width (2048: standard FID)
    dino: nn.Module | None  # timm DINOv2, num_classes=0: forward gives the normed CLS token
    dino_weights: str
    dino_backbone: str


def build_frechet_nets(frechet: dict, backbone: dict | None) -> FrechetNets:
    """FID and FDD networks from ``tokenizer.eval.frechet`` and the FDD backbone entry.

    ``backbone``: the ``features.backbones`` entry named by ``frechet.backbone`` plus ``seed``
    (``features.seed``), or None for no FDD. Weights go through :mod:`reconlab.weights`.
    """
    from reconlab.weights import create_timm_model, inception_weights_file

    fid, fid_id = None, "none"
    if frechet["inception_weights"] != "none":
        from torchmetrics.image.fid import FrechetInceptionDistance

        key = "tokenizer.eval.frechet.inception_weights"
        with tempfile.TemporaryDirectory(prefix="reconlab-inception-") as tmp:
            path, fid_id = inception_weights_file(frechet["inception_weights"], tmp, key)
            fid = FrechetInceptionDistance(
                feature=frechet["inception_features"], feature_extractor_weights_path=str(path)
            )
    dino, dino_id, name = None, "none", "none"
    if backbone is not None:
        name = backbone["id"]
        dino, dino_id = create_timm_model(
            backbone["model"], backbone["weights"], f"features.backbones.{name}.weights",
            seed=backbone.get("seed", 0), num_classes=0, img_size=FDD_SIZE,
        )  # fmt: skip
    return FrechetNets(fid, fid_id, frechet["inception_features"], dino, dino_id, name)


def patch_grid(img: torch.Tensor, patch: int) -> torch.Tensor:
    """(1, 3, H, W) -> (N, 3, patch, patch) non-overlapping squares (remainders dropped);
    the whole image as one sample when it is smaller than ``patch``."""
    h, w = img.shape[-2:]
    if h < patch or w < patch:
        return img
    tiles = img[..., : h // patch * patch, : w // patch * patch].unfold(2, patch, patch)
    tiles = tiles.unfold(3, patch, patch)  # (1, 3, nh, nw, p, p)
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, patch, patch)


class PatchSampler:
    """Collects the same patches of every (target, reconstruction) pair, at most ``max_samples``.

    Each image contributes at most ceil(max_samples / n_images) of its patches (a seeded draw),
    so memory stays bounded for a folder of large photos; the final set is a seeded subset of
    ``max_samples``. Patches are kept as uint8 on the CPU.
    """

    def __init__(self, patch: int, max_samples: int, n_images: int, seed: int) -> None:
        self.patch, self.max_samples, self.seed = patch, max_samples, seed
        self.per_image = -(-max_samples // max(n_images, 1))
        self.targets: list[torch.Tensor] = []
        self.recons: list[torch.Tensor] = []
        self.images = 0

    def add(self, target: torch.Tensor, recon: torch.Tensor) -> None:
        """target, recon: (1, 3, H, W) in [0, 1], same size."""
        t = patch_grid(to_uint8(target.cpu()), self.patch)
        r = patch_grid(to_uint8(recon.cpu()), self.patch)
        gen = torch.Generator().manual_seed(self.seed + self.images)
        keep = torch.randperm(len(t), generator=gen)[: self.per_image].tolist()
        self.targets += [t[i : i + 1] for i in keep]
        self.recons += [r[i : i + 1] for i in keep]
        self.images += 1

    def samples(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        t, r = self.targets, self.recons
        if len(t) > self.max_samples:
            gen = torch.Generator().manual_seed(self.seed)
            keep = torch.randperm(len(t), generator=gen)[: self.max_samples].tolist()
            t, r = [t[i] for i in keep], [r[i] for i in keep]
        return t, r


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float in [0, 1] -> uint8 (rounded); uint8 stays as it is."""
    if x.dtype == torch.uint8:
        return x
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8)


def batches(samples: list[torch.Tensor], size: int = 32) -> list[torch.Tensor]:
    """Consecutive samples of one shape stacked into batches of at most ``size`` (order kept)."""
    out: list[list[torch.Tensor]] = []
    for x in samples:
        if out and out[-1][0].shape == x.shape and len(out[-1]) < size:
            out[-1].append(x)
        else:
            out.append([x])
    return [torch.cat(group) for group in out]


@torch.inference_mode()
def inception_fid(metric: nn.Module, t: list, r: list) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(torchmetrics FID of r against t, target features, reconstruction features).

    The per-sample features (for the bootstrap) are the ones ``metric.update`` computes, read
    by a forward hook on its Inception: each patch passes through the network once, not twice.
    """
    metric.reset()
    feats_t: list[torch.Tensor] = []
    feats_r: list[torch.Tensor] = []
    sink = feats_t

    def keep(_module, _inputs, output) -> None:
        sink.append(output.double())

    hook = metric.inception.register_forward_hook(keep)
    try:
        for real, samples, feats in ((True, t, feats_t), (False, r, feats_r)):
            sink = feats
            for x in batches(samples):
                metric.update(x, real=real)
    finally:
        hook.remove()
    return float(metric.compute()), torch.cat(feats_t), torch.cat(feats_r)


@torch.inference_mode()
def dino_features(model: nn.Module, samples: list[torch.Tensor]) -> torch.Tensor:
    """dgm-eval's DINOv2 preprocessing: bicubic resize to 224, ImageNet normalisation, CLS."""
    mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
    out = []
    for x in batches(samples):
        x = F.interpolate(x.float() / 255, size=(FDD_SIZE, FDD_SIZE), mode="bicubic",
                          antialias=True, align_corners=False).clamp(0, 1)  # fmt: skip
        out.append(model((x - mean) / std).double())
    return torch.cat(out)


def frechet_scores(nets: FrechetNets, sampler: PatchSampler, frechet: dict) -> dict:
    """``fid``, ``fdd`` with ``*_samples``, ``*_ci``, ``*_weights``, ``*_untrained`` of the
    reconstructions against their targets, on the patches ``sampler`` collected."""
    from reconlab.weights import is_untrained

    t, r = sampler.samples()
    out: dict = {"frechet_patch": frechet["patch"], "frechet_images": sampler.images}
    few = f"only {len(t)} sample(s): a Fréchet distance needs at least 2"
    for name, net, weights in (("fid", nets.fid, nets.fid_weights),
                               ("fdd", nets.dino, nets.dino_weights)):  # fmt: skip
        if net is None:
            key = "inception_weights is 'none'" if name == "fid" else "backbone is null"
            out[name] = not_computed(f"tokenizer.eval.frechet.{key}")
            continue
        if len(t) < 2:
            out[name] = not_computed(few)
            continue
        if name == "fid":
            value, ft, fr = inception_fid(net, t, r)
        else:
            ft, fr = dino_features(net, t), dino_features(net, r)
            value = frechet_distance(fr, ft)
        out.update({
            name: value, f"{name}_samples": len(t),
            f"{name}_ci": bootstrap_interval(fr, ft, frechet["bootstrap"], frechet["seed"]),
            f"{name}_weights": weights, f"{name}_untrained": is_untrained(weights),
        })  # fmt: skip
    if nets.fid is not None:
        out["fid_features"] = nets.fid_features
    if nets.dino is not None:
        out["fdd_backbone"] = nets.dino_backbone
    return out
