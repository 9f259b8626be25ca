"""Tokenizer encode/decode throughput and peak memory vs resolution, tiled and untiled.

Run: .venv/bin/python benchmarks/tokenizer.py [--model results/tokenizer/f8x16-K1024/model.safetensors]

Without --model (or when the file is missing) the network of the first params.yaml variant is
built with seeded random weights and reported as untrained: speed and memory do not depend on
the weights; the seam PSNR delta is then measured on an untrained decoder.
The untiled path is the plain approach (whole image through encoder and decoder); tiled uses
``tiling.py``. Peak memory: CPU RSS growth over a trimmed baseline (psutil sampling), or CUDA
max allocated. Ratios are in-process, so the shared machine's load affects both sides alike.
Round trips run under the pipeline's ``tokenizer.precision`` (default ``auto``, resolved for conv
ops by :mod:`reconlab.runtime`), as ``reconlab tokenizer-evaluate`` runs them.
Ends with: RESULT peak_mem_ratio_4096_vs_1024=<x> seam_psnr_delta_db=<y> decode_img_s_512=<z>
precision=<resolved> capability=<CPU class or GPU>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from roofline import result_suffix

from reconlab.config import load_params
from reconlab.evaluation.image_metrics import per_image_metrics
from reconlab.runtime import compute_record, precision_for, resolve_device, set_threads
from reconlab.tokenizer.evaluate import round_trip, square_resize
from reconlab.tokenizer.jpeg import to_tensor
from reconlab.tokenizer.memory import PeakMemory
from reconlab.tokenizer.model import QuantizerOptions, build_tokenizer
from reconlab.tokenizer.train import load_model


def build(args, params) -> tuple[torch.nn.Module, str]:
    if args.model and Path(args.model).exists():
        return load_model(args.model), f"trained ({args.model})"
    t = params["tokenizer"]
    torch.manual_seed(0)
    model = build_tokenizer(
        t["variants"][0],
        t["model"]["base_channels"],
        t["model"]["max_channels"],
        QuantizerOptions(**t["quantizer"]),
    )
    model(torch.rand(2, 3, 128, 128))  # k-means init so the codebook is not all equal
    return model.eval(), "untrained: random:0"


def photo(res: int) -> torch.Tensor:
    import skimage.data

    return to_tensor([square_resize(skimage.data.astronaut(), res)[0]])


def measure(model, res: int, tiled: bool, tile: int, overlap: int, device, precision) -> dict:
    x = photo(res).to(device)
    image_mb = 2 * x.numel() * 4 / 2**20  # input + output float images
    with precision.autocast():
        round_trip(model, photo(2 * tile).to(device), tiled, tile, overlap)  # warm-up
    with PeakMemory(device) as mem, precision.autocast():
        indices, recon, t_enc, t_dec = round_trip(model, x, tiled, tile, overlap)
    psnr = float(per_image_metrics(recon, x)["psnr"][0])
    del recon, indices
    return {
        "res": res, "tiled": tiled, "encode_img_s": 1 / t_enc, "decode_img_s": 1 / t_dec,
        "peak_mb": mem.peak_mb, "peak_minus_images_mb": mem.peak_mb - image_mb, "psnr": psnr,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="results/tokenizer/f8x16-K1024/model.safetensors")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--max-untiled", type=int, default=2048, help="largest untiled resolution")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    args = parser.parse_args()
    params = load_params("params.yaml")
    device = resolve_device("auto")
    threads = set_threads() if device.type == "cpu" else None
    model, weights = build(args, params)
    model = model.to(device)
    precision = precision_for(device, params["tokenizer"]["precision"], kind="conv")
    print(
        f"model {model.spec.name} ({weights}), device {device}, threads {threads}, "
        f"precision {precision.name} ({precision.reason}), "
        f"tile {args.tile} overlap {args.overlap}"
    )
    header = f"{'res':>5} {'mode':>7} {'enc img/s':>10} {'dec img/s':>10} {'peak MiB':>9} {'-images':>8} {'PSNR':>7}"
    print(header)
    rows = []
    for res in args.resolutions:
        for tiled in (False, True):
            if not tiled and res > args.max_untiled:
                print(f"{res:>5} {'untiled':>7} skipped (> --max-untiled {args.max_untiled})")
                continue
            r = measure(model, res, tiled, args.tile, args.overlap, device, precision)
            rows.append(r)
            print(
                f"{res:>5} {'tiled' if tiled else 'untiled':>7} {r['encode_img_s']:>10.3g} "
                f"{r['decode_img_s']:>10.3g} {r['peak_mb']:>9.0f} {r['peak_minus_images_mb']:>8.0f} {r['psnr']:>7.3f}"
            )

    def get(res, tiled):
        return next((r for r in rows if r["res"] == res and r["tiled"] == tiled), None)

    print("\nratios (tiled / untiled, same process):")
    for res in args.resolutions:
        u, t = get(res, False), get(res, True)
        if u and t:
            print(
                f"  {res:>5}: peak memory x{t['peak_mb'] / max(u['peak_mb'], 1e-9):.2f}, "
                f"decode speed x{t['decode_img_s'] / u['decode_img_s']:.2f}, "
                f"PSNR delta {t['psnr'] - u['psnr']:+.4f} dB"
            )
    t4096, t1024 = get(4096, True), get(1024, True)
    ratio = t4096["peak_mb"] / t1024["peak_mb"] if t4096 and t1024 else float("nan")
    if t4096 and t1024:
        print(
            f"tiled peak memory 4096 vs 1024: x{ratio:.2f} in total, "
            f"x{t4096['peak_minus_images_mb'] / max(t1024['peak_minus_images_mb'], 1e-9):.2f} "
            "without the input/output image buffers (16x more pixels)"
        )
    seam = [
        abs(get(r, True)["psnr"] - get(r, False)["psnr"])
        for r in args.resolutions
        if get(r, True) and get(r, False) and r > args.tile
    ]
    seam_delta = max(seam) if seam else float("nan")
    dec512 = get(512, False)["decode_img_s"] if get(512, False) else float("nan")
    print(
        f"RESULT peak_mem_ratio_4096_vs_1024={ratio:.3f} seam_psnr_delta_db={seam_delta:.4f} "
        f"decode_img_s_512={dec512:.3f} {result_suffix(compute_record(precision))}"
    )
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()
