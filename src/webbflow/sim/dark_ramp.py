"""Start a simulation from a real dark ramp: rearranged to the requested readout, lazily.

A dark exposure (a raw ``*_uncal.fits`` taken with the shutter closed, as in
Mirage's dark libraries) already holds the bias, reference-pixel drifts, read
noise, 1/f noise, dark current and hot pixels of a real detector. The
simulated signal (sources, sky, cosmic rays, after IPC and non-linearity) is
added to it in place of the noise model.

Rearranging: a dark read with the requested pattern is used group for group;
a frame-by-frame dark (``NFRAMES = 1``, ``GROUPGAP = 0``: RAPID, NISRAPID,
FGSRAPID) is averaged and skipped into any pattern, group ``g`` being the mean
of dark frames ``g*(nframes+groupgap) … + nframes - 1``. Integrations cycle
through the dark's integrations. Approximation: the signal is added to the
dark in raw DN, so the non-linearity of signal and dark charge together is
not modelled (dark charge is small).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from webbflow.errors import InputError
from webbflow.io.fits_reader import open_exposure
from webbflow.model import meta_value


def dark_groups(
    path: str | Path,
    *,
    detector: str,
    readpatt: str,
    nints: int,
    ngroups: int,
    nframes: int,
    groupgap: int,
    like: xr.Dataset,
) -> xr.DataArray:
    """The dark ramp of ``path`` rearranged to a readout and cropped to ``like``'s window.

    Parameters
    ----------
    path
        Raw dark ramp (``uncal`` layout).
    detector, readpatt
        The simulated exposure's ``DETECTOR`` and ``READPATT``.
    nints, ngroups, nframes, groupgap
        The simulated readout.
    like
        The simulated exposure's template: its ``y``/``x`` coordinates and tiles.

    Returns
    -------
    xarray.DataArray
        (integration, group, y, x) float32 raw DN, lazy, tiled like ``like``.

    Raises
    ------
    InputError
        Another detector, a window the dark does not cover, too few frames, or a
        readout pattern that cannot be rearranged.
    """
    dark = open_exposure(path)
    det = str(meta_value(dark, "instrument.detector", "")).upper()
    if det != detector.upper():
        raise InputError(f"{path}: dark ramp is for DETECTOR={det}, the simulation is {detector}")
    d_patt = str(meta_value(dark, "exposure.readpatt", "")).upper()
    d_nframes = int(meta_value(dark, "exposure.nframes", 1) or 1)
    d_gap = int(meta_value(dark, "exposure.groupgap", 0) or 0)
    d_groups = dark.sizes["group"]
    if d_patt == readpatt.upper() and (d_nframes, d_gap) == (nframes, groupgap):
        if d_groups < ngroups:
            raise InputError(f"{path}: dark ramp has {d_groups} groups, the simulation needs {ngroups}")
        frames = [[g] for g in range(ngroups)]
    elif (d_nframes, d_gap) == (1, 0):
        period = nframes + groupgap
        frames = [[g * period + j for j in range(nframes)] for g in range(ngroups)]
        if frames[-1][-1] >= d_groups:
            raise InputError(
                f"{path}: a {readpatt} ramp of {ngroups} groups spans {frames[-1][-1] + 1} frames; "
                f"the dark ramp has {d_groups}"
            )
    else:
        raise InputError(
            f"{path}: a {d_patt} dark ramp (NFRAMES={d_nframes}, GROUPGAP={d_gap}) cannot be rearranged "
            f"to {readpatt}; use a dark read frame by frame (RAPID, NISRAPID, FGSRAPID) or with {readpatt}"
        )
    y, x = like["y"].values, like["x"].values
    if not (np.isin(y, dark["y"].values).all() and np.isin(x, dark["x"].values).all()):
        raise InputError(f"{path}: the dark ramp does not cover the simulated window")
    sci = dark["sci"].sel(y=y, x=x)
    groups = [sci.isel(group=f).mean("group") if len(f) > 1 else sci.isel(group=f[0]) for f in frames]
    stacked = xr.concat(groups, dim="group").transpose("integration", "group", "y", "x")
    ints = [i % dark.sizes["integration"] for i in range(nints)]
    out = stacked.isel(integration=ints).astype(np.float32)
    out = out.assign_coords(integration=like["integration"].values, group=like["group"].values)
    ychunks = dict(zip(like["sci"].dims, like["sci"].chunks or (), strict=False)).get("y")
    xchunks = dict(zip(like["sci"].dims, like["sci"].chunks or (), strict=False)).get("x")
    return out.chunk({"integration": -1, "group": -1, "y": ychunks, "x": xchunks})
