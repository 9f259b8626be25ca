"""Feature extraction speed: the plain fp32 loop a user would write vs reconlab's extractor.

Run: .venv/bin/python benchmarks/feature_cache.py [--images 64] [--rounds 3] [--compile]

Both sides run in this process, on the same images and the same weights, interleaved round by
round so that load from other processes hits both alike; ratios are what to read, not absolute
numbers. The plain loop: fp32, batch 32, 224 px, ``model.forward_features`` under ``no_grad``.
reconlab: :class:`reconlab.features.extract.FeatureExtractor` at ``--precision`` (default
``auto``: bf16 weights and activations only where the CPU has native bf16 and the start-up probe
finds it faster, else fp32 — see :mod:`reconlab.runtime`), inference mode, same batch, its tokens
cast to the cache dtype (bf16) as they are stored.

``roofline_frac`` is the achieved FLOP rate (FLOPs per image x img/s) over the matmul peak
measured here in the resolved precision: how close to the machine's limit the extractor runs.
``ceiling`` is that peak over the plain loop's achieved FLOP rate: the largest speedup any
extractor could reach in the resolved precision on this machine (every FLOP at the matmul
peak). A speedup target above it needs a faster unit (AMX, a GPU) or fewer FLOPs, not code.
No bf16 peak is measured where bf16 is not the resolved precision (on CPUs without native bf16
that alone would take minutes).

Weights: without network the benchmark uses seeded random weights, saved to a file and loaded on
the reconlab side through the weights-file path. timm initialises DINOv2's LayerScale at 1e-5,
which makes a random ViT nearly the identity (any precision then gives cosine 1.0), so the
LayerScale gammas are set to ``--layerscale`` (default 0.5; trained DINOv2 values are of order
0.1-1) before saving: every block then really contributes and the cosine means something.
``--weights FILE`` uses a real checkpoint instead.

Ends with: RESULT plain_img_s=.. reconlab_img_s=.. speedup=.. ceiling=.. roofline_frac=.. cosine=..
            tflops=.. peak_tflops=.. precision=<resolved> capability=<CPU class or GPU>
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from roofline import matmul_peak_tflops, result_suffix


def photos(n: int, size: int = 224, seed: int = 0) -> torch.Tensor:
    """``n`` uint8 (3, size, size) crops of scikit-image's bundled colour photos."""
    from PIL import Image
    from skimage import data

    sources = [
        data.astronaut(),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        data.immunohistochemistry(),
    ]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = Image.fromarray(sources[i % len(sources)])
        scale = size / min(img.size) * rng.uniform(1.0, 1.6)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
        top = rng.integers(0, img.height - size + 1)
        left = rng.integers(0, img.width - size + 1)
        out.append(np.asarray(img)[top : top + size, left : left + size])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def flops_per_image(model: torch.nn.Module, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.forward_features(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_small_patch14_dinov2.lvd142m")
    parser.add_argument("--weights", help="a checkpoint file (default: seeded random weights)")
    parser.add_argument("--layerscale", type=float, default=0.5)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile reconlab's forward")
    parser.add_argument(
        "--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
        help="reconlab's compute precision (default auto: what the pipeline resolves to here)",
    )  # fmt: skip
    parser.add_argument("--no-fast-path", action="store_true", help="plain bf16 eager modules")
    args = parser.parse_args()

    import timm
    from safetensors.torch import save_file

    from reconlab.features.backbones import load_backbone
    from reconlab.features.extract import FeatureExtractor
    from reconlab.runtime import compute_record, set_threads

    threads = set_threads()
    images = photos(args.images, args.size)
    bs = args.batch_size

    # The user's model: fp32, straight from timm.
    torch.manual_seed(0)
    plain = timm.create_model(args.model, pretrained=False, img_size=args.size, num_classes=0)
    plain.eval()
    tmp = tempfile.TemporaryDirectory()
    weights = args.weights
    if weights:
        plain = timm.create_model(
            args.model,
            pretrained=True,
            img_size=args.size,
            num_classes=0,
            pretrained_cfg_overlay=dict(file=weights),
        ).eval()
    else:
        for module in plain.modules():
            for name in ("gamma", "gamma_1", "gamma_2"):  # timm ViT / Eva (DINOv3) layouts
                gamma = getattr(module, name, None)
                if isinstance(gamma, torch.nn.Parameter):
                    gamma.data.fill_(args.layerscale)
        weights = str(Path(tmp.name) / "weights.safetensors")
        save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, weights)
    mean = torch.tensor(plain.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(plain.pretrained_cfg["std"]).view(1, 3, 1, 1)

    def run_plain() -> torch.Tensor:
        outs = []
        with torch.no_grad():
            for i in range(0, len(images), bs):
                x = (images[i : i + bs].float() / 255 - mean) / std
                outs.append(plain.forward_features(x))
        return torch.cat(outs)

    backbone = load_backbone(args.model, weights, args.size)
    extractor = FeatureExtractor(
        backbone,
        "cpu",
        args.precision,
        compile=args.compile,
        batch_size=bs,
        fast_path=not args.no_fast_path,
    )

    def run_reconlab() -> torch.Tensor:
        outs = []
        for i in range(0, len(images), bs):
            f = extractor(images[i : i + bs])
            tokens = torch.cat([f.cls[:, None], f.patch.flatten(1, 2)], dim=1)
            outs.append(tokens.to(torch.bfloat16))  # what the cache stores
        return torch.cat(outs)

    print(f"{args.model}, {args.images} images of {args.size} px, batch {bs}, {threads} threads")
    t0 = time.perf_counter()
    run_reconlab()  # warm-up (and compilation when --compile)
    print(f"reconlab warm-up {time.perf_counter() - t0:.1f} s")
    plain_s = reconlab_s = 0.0
    for r in range(args.rounds):
        t0 = time.perf_counter()
        ref = run_plain()
        t1 = time.perf_counter()
        fast = run_reconlab()
        t2 = time.perf_counter()
        plain_s += t1 - t0
        reconlab_s += t2 - t1
        print(
            f"round {r}: plain {args.images / (t1 - t0):.2f} img/s, "
            f"reconlab {args.images / (t2 - t1):.2f} img/s, x{(t1 - t0) / (t2 - t1):.2f}"
        )
    n = args.images * args.rounds
    plain_img_s, reconlab_img_s = n / plain_s, n / reconlab_s
    prefix = backbone.num_prefix_tokens
    ref_tokens = torch.cat([ref[:, :1], ref[:, prefix:]], dim=1)  # CLS + patches, as cached
    cosine = torch.nn.functional.cosine_similarity(ref_tokens, fast.float(), dim=-1)
    flops = flops_per_image(plain, args.size)
    compute = compute_record(extractor.precision)
    peak = matmul_peak_tflops(extractor.dtype)
    peak_fp32 = peak if extractor.dtype == torch.float32 else matmul_peak_tflops(torch.float32)
    achieved = flops * reconlab_img_s / 1e12
    plain_tflops = flops * plain_img_s / 1e12
    print(f"min per-token cosine {cosine.min():.5f}; {flops / 1e9:.2f} GFLOP per image")
    print(
        f"precision {compute['precision']} ({extractor.precision.reason}); measured matmul peak "
        f"{peak:.3f} TFLOP/s in it, fp32 {peak_fp32:.3f}; plain loop achieved "
        f"{plain_tflops:.3f} TFLOP/s ({plain_tflops / peak_fp32:.2f} "
        f"of the fp32 peak), reconlab {achieved:.3f}"
    )
    print(
        f"RESULT plain_img_s={plain_img_s:.2f} reconlab_img_s={reconlab_img_s:.2f} "
        f"speedup={reconlab_img_s / plain_img_s:.2f} ceiling={peak / plain_tflops:.2f} "
        f"roofline_frac={achieved / peak:.2f} "
        f"cosine={cosine.mean():.5f} tflops={achieved:.3f} peak_tflops={peak:.3f} "
        f"{result_suffix(compute)}"
    )


if __name__ == "__main__":
    main()
