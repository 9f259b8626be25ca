"""Tokenizer figures: PSNR vs bits per pixel against the JPEG curve, and resolution scaling.

:mod:`reconlab.tokenizer.summary` calls them with its summary rows; the rate-distortion curve per
quantizer family is drawn by :mod:`reconlab.tokenizer.rd`.
"""

from __future__ import annotations

from pathlib import Path

from reconlab.figures import log_axis, pyplot, save_figure


def plot_psnr_vs_bpp(rows: list[dict], jpeg: dict[int, list[dict]], path: Path) -> None:
    plt = pyplot()
    resolutions = sorted(jpeg)
    fig, axes = plt.subplots(
        1, len(resolutions), figsize=(5.0 * len(resolutions), 4.0), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    variants = sorted({r["variant"] for r in rows})
    markers = "osD^v<>ph*"
    for ax, res in zip(axes[0], resolutions, strict=True):
        curve = sorted(jpeg[res], key=lambda r: r["bpp"])
        ax.plot(
            [r["bpp"] for r in curve],
            [r["psnr"] for r in curve],
            "-",
            color="0.4",
            label="JPEG (Pillow)",
        )
        for r in curve[:: max(len(curve) // 5, 1)]:
            ax.annotate(
                f"q{r['quality']}", (r["bpp"], r["psnr"]), xytext=(3, -11),
                textcoords="offset points", fontsize=9, color="0.35",
            )  # fmt: skip
        for i, v in enumerate(variants):
            pts = [r for r in rows if r["variant"] == v and r["resolution"] == res]
            for p in pts:
                ax.plot(p["bpp"], p["psnr"], markers[i % len(markers)], ms=8, label=v)
        log_axis(ax)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{res} px")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.suptitle("Tokenizer variants on the JPEG rate-distortion curve (same test photos)")
    save_figure(fig, path)


def plot_resolution_scaling(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained")
    for v in sorted({r["variant"] for r in rows}):
        pts = sorted((r for r in rows if r["variant"] == v), key=lambda r: r["resolution"])
        res = [p["resolution"] for p in pts]
        axes[0].plot(res, [p["psnr"] for p in pts], "o-", label=v)
        axes[1].plot(res, [p["encode_img_s"] for p in pts], "o-", label=f"{v} encode")
        axes[1].plot(res, [p["decode_img_s"] for p in pts], "s--", label=f"{v} decode")
        axes[2].plot(res, [p["peak_mem_mb"] for p in pts], "o-", label=v)
        for p in pts:
            if p["tiled"]:
                axes[2].annotate("tiled", (p["resolution"], p["peak_mem_mb"]), fontsize=9)
    titles = ("PSNR (dB)", "throughput (img/s)", "peak memory (MiB)")
    for ax, title in zip(axes, titles, strict=True):
        log_axis(ax, "x", base=2)
        ax.set_xlabel("resolution (px, square)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    log_axis(axes[1], "y")
    fig.suptitle("Resolution scaling (test photos; resolutions above native size are upsampled)")
    save_figure(fig, path)
