"""Decoder training throughput: reconlab's loop vs the plain fp32 eager loop, in one process.

Same model (TinyDecoder, same init), same data (random DINO-sized feature grids paired with
smooth images), same batch size and steps. The plain loop is what one would write first: a
DataLoader over a TensorDataset, fp32, NCHW, ``loss.item()`` every step. reconlab's loop
(:func:`reconlab.decoder.train.train_decoder`) runs at ``--precision`` (default ``auto``: bf16
autocast only where the CPU has native bf16 and the start-up probe finds it faster, else fp32;
see :mod:`reconlab.runtime`), with channels-last tensors and batch gathering from (possibly
memory-mapped) bf16 features. Rounds alternate between the two
(one short training each) so that load from other processes hits both alike; the medians of
the throughputs and of the per-round ratios are reported. On a shared machine, use more rounds.

    .venv/bin/python benchmarks/decoder_train.py [--grid 16] [--images 48] [--epochs 1] [--rounds 6]

Ends with ``RESULT plain_samples_s=<x> reconlab_samples_s=<y> speedup=<y/x> roofline_frac=<f>
precision=<resolved> capability=<CPU class or GPU>``; ``roofline_frac`` is reconlab's training
FLOP rate over the matmul peak measured here in the resolved precision (see ``roofline.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
import torch.nn.functional as F
from roofline import matmul_peak_tflops, result_suffix, training_flops
from torch.utils.data import DataLoader, TensorDataset

from reconlab.config import DecoderConfig
from reconlab.decoder.data import DecoderDataset, to_uint8
from reconlab.decoder.train import build_decoder, train_decoder
from reconlab.runtime import compute_record, precision_for, seed_everything, set_threads


def make_data(n: int, grid: int, dim: int, patch: int) -> DecoderDataset:
    g = torch.Generator().manual_seed(0)
    features = torch.randn(n, grid, grid, dim, generator=g).to(torch.bfloat16)  # as cached
    coarse = torch.rand(n, 3, grid, grid, generator=g)
    images = F.interpolate(coarse, size=(grid * patch,) * 2, mode="bicubic").clamp(0, 1)
    return DecoderDataset([features], to_uint8(images))


def plain_loop(cfg: DecoderConfig, data: DecoderDataset, patch: int) -> tuple[float, float]:
    """The baseline: fp32, NCHW, DataLoader + TensorDataset. Returns (samples/s, last loss)."""
    seed_everything(cfg.seed)
    model = build_decoder(cfg, data.channels, patch)  # same init as train_decoder's
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x = data.features[0].float().permute(0, 3, 1, 2).contiguous()
    y = data.images.float() / 255.0
    loader = DataLoader(
        TensorDataset(x, y), batch_size=cfg.batch_size, shuffle=True, drop_last=True
    )
    model.train()
    samples, losses, t0 = 0, [], time.perf_counter()
    for _ in range(cfg.epochs):
        for xb, yb in loader:
            loss = F.l1_loss(model(xb).rgb, yb)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            losses.append(loss.item())
            samples += len(xb)
    return samples / (time.perf_counter() - t0), statistics.mean(losses[-len(loader) :])


def reconlab_loop(cfg: DecoderConfig, data: DecoderDataset, patch: int) -> tuple[float, float]:
    result = train_decoder(cfg, data, None, patch, progress=False)
    return result.samples_per_s, result.log[-1]["train_loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--grid", type=int, default=16, help="patch grid (16 -> 224 px at patch 14)")
    ap.add_argument("--dim", type=int, default=384, help="feature dim (ViT-S: 384)")
    ap.add_argument("--patch", type=int, default=14)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    args = ap.parse_args()

    threads = set_threads()
    data = make_data(args.images, args.grid, args.dim, args.patch)
    # warmup/cosine/clip identical in both loops would need the scheduler in the plain loop;
    # the plain loop keeps a constant lr, so reconlab's runs with no warmup and no decay too.
    cfg = DecoderConfig(
        width=args.width, batch_size=args.batch, epochs=args.epochs, lr=1e-3,
        warmup_frac=0.0, min_lr_ratio=1.0, precision=args.precision, channels_last=True, device="cpu",
    )  # fmt: skip
    size = args.grid * args.patch
    print(
        f"decoder_train: {args.images} images, grid {args.grid}x{args.grid}x{args.dim} -> "
        f"{size}x{size} px, batch {args.batch}, width {args.width}, {args.epochs} epochs, "
        f"{threads} threads, torch {torch.__version__}"
    )
    warm = dataclasses.replace(cfg, epochs=1)
    plain_loop(warm, data, args.patch)  # first calls build oneDNN kernels: not timed
    reconlab_loop(warm, data, args.patch)

    plain, fast = [], []
    for r in range(args.rounds):
        p = plain_loop(cfg, data, args.patch)
        f = reconlab_loop(cfg, data, args.patch)
        plain.append(p)
        fast.append(f)
        print(
            f"  round {r}: plain {p[0]:7.1f} samples/s (final loss {p[1]:.4f})   "
            f"reconlab {f[0]:7.1f} samples/s (final loss {f[1]:.4f})   x{f[0] / p[0]:.2f}"
        )
    x = statistics.median(s for s, _ in plain)
    y = statistics.median(s for s, _ in fast)
    ratio = statistics.median(f[0] / p[0] for p, f in zip(plain, fast, strict=True))
    print(f"median of per-round speedups: x{ratio:.2f}")
    lp = statistics.median(loss for _, loss in plain)
    lf = statistics.median(loss for _, loss in fast)
    print(f"final train loss (median over rounds): plain {lp:.4f}, reconlab {lf:.4f}")
    precision = precision_for(torch.device("cpu"), args.precision, kind="conv")
    compute = compute_record(precision)
    model = build_decoder(cfg, data.channels, args.patch)
    batch = data.features[0][: args.batch].float().permute(0, 3, 1, 2).contiguous()
    with precision.autocast():
        flops = training_flops(model, batch) / args.batch
    peak = matmul_peak_tflops(precision.dtype)
    frac = flops * y / 1e12 / peak
    print(
        f"precision {compute['precision']} ({precision.reason}); {flops / 1e9:.2f} GFLOP per "
        f"training sample; matmul peak {peak:.3f} TFLOP/s in {compute['precision']}"
    )
    print(
        f"RESULT plain_samples_s={x:.2f} reconlab_samples_s={y:.2f} speedup={y / x:.2f} "
        f"roofline_frac={frac:.2f} {result_suffix(compute)}"
    )


if __name__ == "__main__":
    main()
