"""The ``ipc`` step: inter-pixel-capacitance correction (see the kernel for physics).

Reference: IPC, a 2-D ``kernel`` (ky, kx). Tiles get a halo of half the
kernel size, so the result is exact across tile edges. Only ``sci`` is
corrected (as jwst; the zero frame is not).

Not built: 4-D (per-pixel) IPC kernels (→ :class:`ReferenceFileError`), NIRSpec IRS2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from webbflow.engine.params import StepParams
from webbflow.engine.step import Step
from webbflow.engine.tiles import map_tiles
from webbflow.errors import ReferenceFileError
from webbflow.model import RAMP_DIMS
from webbflow.steps.ipc.kernel import ipc_kernel

#: Reference-pixel border and full-frame size of the near-infrared detectors, pixels.
REF_BORDER = 4
FRAME_SIZE = 2048


@dataclass(frozen=True)
class Params(StepParams):
    """ipc has no parameters besides ``skip``."""


class IPCStep(Step):
    """Convolve the science pixels with the IPC deconvolution kernel."""

    name = "ipc"
    cal_step = "ipc"
    reftypes = ("ipc",)
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with IPC-corrected ``sci`` (lazy)."""
        ref = refs["ipc"]
        kernel = ref["kernel"]
        if kernel.ndim != 2:
            raise ReferenceFileError(
                f"{ref.attrs.get('name', 'ipc reference')}: IPC kernel has dims {kernel.dims};"
                " only a 2-D (ky, kx) kernel is supported"
            )
        ky, kx = kernel.shape
        depth = max(ky // 2, ky - ky // 2 - 1, kx // 2, kx - kx // 2 - 1)
        out = map_tiles(
            ipc_kernel,
            {"sci": ds["sci"], "y": ds["y"], "x": ds["x"]},
            {"sci": (RAMP_DIMS, np.float32)},
            like=ds,
            depth=depth,
            kwargs={"kernel": kernel.data, "ref_border": REF_BORDER, "frame_size": FRAME_SIZE},
        )
        return ds.assign(sci=out["sci"])
