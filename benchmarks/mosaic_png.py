"""Render an Image3 mosaic (``*_i2d.fits``) and its coverage as a PNG, to look for seams.

``python benchmarks/mosaic_png.py OUT/x_i2d.fits docs/img/mosaic.png``: left, the mosaic with an
asinh stretch around the sky; right, the number of inputs per pixel (from ``CON``) with the
sky median and its error in each coverage region, the check ``tests/test_image3.py`` asserts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from astropy.visualization import AsinhStretch, ImageNormalize

from webbflow.io.fits_reader import open_product


def render(i2d: Path, png: Path) -> None:
    """Write the PNG of mosaic ``i2d`` to ``png``."""
    mosaic = open_product(i2d)
    sci = mosaic["sci"].values
    con = mosaic["con"].values.astype(np.uint32)
    depth = sum(((con >> np.uint32(b)) & np.uint32(1)).sum(axis=0) for b in range(32))
    sky = np.nanmedian(sci)
    noise = 1.4826 * np.nanmedian(np.abs(sci - sky))
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6))
    norm = ImageNormalize(vmin=sky - 3 * noise, vmax=sky + 200 * noise, stretch=AsinhStretch(0.02))
    axes[0].imshow(sci, origin="lower", cmap="gray", norm=norm, interpolation="nearest")
    axes[0].set_title(f"{i2d.name}\nSCI (MJy/sr), asinh stretch")
    im = axes[1].imshow(depth, origin="lower", cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=axes[1], label="inputs per pixel")
    lines = []
    for n in np.unique(depth):
        values = sci[(depth == n) & np.isfinite(sci) & (np.abs(sci - sky) < 5 * noise)]
        if n and values.size > 1000:
            err = 1.2533 * values.std() / np.sqrt(values.size)
            lines.append(f"{n} inputs: sky {np.median(values):.4f} ± {err:.4f}")
    axes[1].set_title("inputs per pixel (CON)")
    axes[1].text(0.02, 0.02, "\n".join(lines), transform=axes[1].transAxes, fontsize=8, color="white")
    for ax in axes:
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("i2d", type=Path)
    parser.add_argument("png", type=Path)
    args = parser.parse_args()
    render(args.i2d, args.png)
    print(args.png)


if __name__ == "__main__":
    main()
