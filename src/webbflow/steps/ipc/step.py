"""The ``ipc`` step: inter-pixel-capacitance correction (see the kernel for physics).

Reference: IPC, a 2-D ``kernel`` (ky, kx). Tiles get a halo of half the
kernel size, so the result is exact across tile edges. Only ``sci`` is
corrected (as jwst; the zero frame is not).

MIRI: reference columns x 0-3 and 1028-1031 only (as jwst); skipped when no IPC
reference is found (webbflow embeds none for MIRI) unless ``override_ipc`` is given.

Not built: 4-D (per-pixel) IPC kernels (→ :class:`ReferenceFileError`), NIRSpec IRS2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from webbflow.engine.params import StepParams
from webbflow.engine.step import Resolver, Step, default_resolver
from webbflow.engine.tiles import map_tiles
from webbflow.errors import ReferenceFileError
from webbflow.model import RAMP_DIMS
from webbflow.steps._miri import is_miri
from webbflow.steps.ipc.kernel import ipc_kernel

#: Reference-pixel border and full-frame size of the near-infrared detectors, pixels.
REF_BORDER = 4
FRAME_SIZE = 2048
#: MIRI: reference columns only, ``(rows, columns)``; full frame ``(y, x)``.
MIRI_REF_BORDER = (0, 4)
MIRI_FRAME = (1024, 1032)


@dataclass(frozen=True)
class Params(StepParams):
    """ipc has no parameters besides ``skip``."""


class IPCStep(Step):
    """Convolve the science pixels with the IPC deconvolution kernel."""

    name = "ipc"
    cal_step = "ipc"
    reftypes = ("ipc",)
    Params = Params

    def _apply(self, ds: xr.Dataset, resolver: Resolver | None) -> xr.Dataset:
        # webbflow embeds no MIRI IPC reference: without an override (or CRDS), skip
        if is_miri(ds) and not self.params.skip and "ipc" not in self.overrides:
            resolver = resolver or default_resolver()
            try:
                resolver.resolve("ipc", ds, None)
            except ReferenceFileError:
                return self.mark_skipped(ds, "no MIRI IPC reference (none is embedded; give override_ipc)")
        return super()._apply(ds, resolver)

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
        geometry: dict[str, Any] = (
            {"ref_border": MIRI_REF_BORDER, "frame_size": MIRI_FRAME}
            if is_miri(ds)
            else {"ref_border": REF_BORDER, "frame_size": FRAME_SIZE}
        )
        depth = max(ky // 2, ky - ky // 2 - 1, kx // 2, kx - kx // 2 - 1)
        out = map_tiles(
            ipc_kernel,
            {"sci": ds["sci"], "y": ds["y"], "x": ds["x"]},
            {"sci": (RAMP_DIMS, np.float32)},
            like=ds,
            depth=depth,
            kwargs={"kernel": kernel.data, **geometry},
        )
        return ds.assign(sci=out["sci"])
