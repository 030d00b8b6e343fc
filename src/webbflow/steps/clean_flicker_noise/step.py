"""The ``clean_flicker_noise`` step: remove 1/f (NIR) and flicker (MIRI) noise from ramps.

Lazy graph, in three parts (see :mod:`~webbflow.steps.clean_flicker_noise.kernel`):

1. *scene mask* — a draft rate is fitted tile by tile (our ``ramp_fit`` kernel, as jwst
   runs its ``ramp_fit`` step) and gathered, rate-sized (1/(nints·ngroups) of the ramp),
   into one task that sigma-clips it into the background mask;
2. *per-group fit* — each group difference has global statistics (an iteratively
   sigma-clipped centre and width, a median background) that are not decomposable into
   per-tile partial sums, and medians along whole detector lines; so one task per
   (integration, group) gathers that plane pair (plane-sized, never the exposure) and
   returns a background level and one value per line and channel;
3. *broadcast* — every tile rebuilds its ramps from the small fit results.

The fit does not depend on the tiling, so the result is identical for full-width strips,
square tiles or one tile. Memory: the tiles of the input wait, as in jwst, until every
plane has been fitted, so this step holds about one input exposure (skipped by default, as
in jwst's Detector1, where it runs after ``jump`` and before ``ramp_fit``).

The fast-read direction follows ``meta.subarray.slowaxis`` (median along DMS ``x`` for
NIRCam, ``y`` for NIRISS/FGS); MIRI's flicker runs along ``y`` (median along columns).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import SkipStep, Step
from webbflow.errors import InputError, UsageError
from webbflow.model import meta_value, require_ramp, tile_size
from webbflow.steps.clean_flicker_noise.kernel import apply_correction, fit_plane, scene_mask

log = logging.getLogger("webbflow")

#: Full-frame NIR detector size and channel width along the fast axis, pixels.
FULL, CHANNEL = 2048, 512
#: Exposure types of spectroscopy (the ``fft``/NSClean method applies to these only).
NSCLEAN_TYPES = ("NRS_MSASPEC", "NRS_IFU", "NRS_FIXEDSLIT", "NRS_BRIGHTOBJ")


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`CleanFlickerNoiseStep` (jwst 3.0 names and defaults)."""

    skip: bool = param(True, "Skip this step (default True, as jwst).")
    autoparam: bool = param(False, "Choose fit and background parameters from the data (not built).")
    fit_method: str = param(
        "median", "Noise fit: median (fft applies to NIRSpec only).", choices=("fft", "median")
    )
    fit_by_channel: bool = param(False, "Fit each readout channel separately (full-frame NIR only).")
    background_method: str | None = param(
        "median",
        "Background removed before the fit: median or None (model, median_image not built).",
        choices=("median", "model", "median_image", None),
    )
    background_box_size: tuple[int, int] | None = param(None, "Box of the 'model' background (not built).")
    mask_science_regions: bool = param(False, "Mask known science regions (NIRSpec/MIRI/SOSS; not built).")
    apply_flat_field: bool = param(False, "Divide by the flat before fitting (not built).")
    n_sigma: float = param(2.0, "Clip level for non-background signal, sigma; 0: no clip.", minimum=0)
    fit_histogram: bool = param(False, "Width from a Gaussian fit to the histogram (not built).")
    single_mask: bool = param(True, "One scene mask for all integrations.")
    user_mask: str | None = param(None, "FITS image (SCI extension): non-zero marks background pixels.")
    save_mask: bool = param(False, "Save the scene mask (not built).")
    save_background: bool = param(False, "Save the fitted background (not built).")
    save_noise: bool = param(False, "Save the fitted noise (not built).")


class CleanFlickerNoiseStep(Step):
    """Fit and subtract 1/f / flicker noise from ramps (median method), NIR and MIRI imaging.

    Declares ``readnoise`` and ``gain`` (the draft rate of the scene mask is a ramp fit).
    """

    name = "clean_flicker_noise"
    cal_step = "clean_flicker_noise"
    reftypes = ("readnoise", "gain")
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """The lazily cleaned exposure (``sci`` only; DQ is unchanged)."""
        p: Params = self.params  # type: ignore[assignment]
        _check_params(p)
        require_ramp(ds)
        exp_type = str(meta_value(ds, "exposure.type", "") or "").upper()
        miri = exp_type.startswith("MIR")
        if miri and exp_type != "MIR_IMAGE":
            raise SkipStep(f"EXP_TYPE {exp_type} is not supported")
        if p.fit_method == "fft":
            if exp_type not in NSCLEAN_TYPES:
                raise SkipStep(f"fit_method 'fft' cannot be applied to exp_type {exp_type}")
            raise UsageError("clean_flicker_noise.fit_method='fft' (NSClean) is not built in webbflow")
        if p.mask_science_regions and miri:
            raise UsageError("clean_flicker_noise.mask_science_regions=True is not built for MIRI")
        nint, ngroup, ny, nx = ds.sci.shape
        if ngroup < 2:
            raise SkipStep("one group per integration: no group differences to clean")

        median_axis = 0 if miri else abs(int(meta_value(ds, "subarray.slowaxis", 2) or 2)) - 1
        full = str(meta_value(ds, "subarray.name", "") or "").upper() == "FULL"
        along = (ny, nx)[median_axis]
        by_channel = p.fit_by_channel and full and not miri and along == FULL
        if p.fit_by_channel and not by_channel:
            log.warning("clean_flicker_noise: fit_by_channel applies to full-frame NIR data only; ignored")
        nchannels = FULL // CHANNEL if by_channel else 1

        mask = _scene_mask(ds, refs, p)
        sci, gdq = ds.sci.data, ds.groupdq.data
        fits = []
        for i in range(nint):
            m = mask[i if len(mask) > 1 else 0]
            for j in range(ngroup - 1):
                fits.append(
                    dask.delayed(fit_plane, nout=3, pure=True)(
                        sci[i, j],
                        sci[i, j + 1],
                        gdq[i, j + 1],
                        m,
                        median_axis=median_axis,
                        nchannels=nchannels,
                        background_method=p.background_method,
                        n_sigma=p.n_sigma,
                        unusable=dq.DO_NOT_USE | dq.JUMP_DET,
                    )
                )
        nlines = (ny, nx)[1 - median_axis]
        shape = (nint, ngroup - 1)

        def stack(k: int, tail: tuple[int, ...], dtype: type) -> da.Array:
            parts = [da.from_delayed(f[k], tail, dtype=dtype) for f in fits]
            return da.stack(parts).reshape(shape + tail).rechunk(shape + tail)

        background = stack(0, (), np.float32)
        stripes = stack(1, (nlines, nchannels), np.float32)
        usable = stack(2, (), np.bool_)

        ychunks, xchunks = tile_size(ds)
        line_chunks, along_chunks = (xchunks, ychunks) if median_axis == 0 else (ychunks, xchunks)
        stripes = stripes.rechunk((*shape, line_chunks, (nchannels,)))
        channel = np.minimum(np.arange(along) // CHANNEL, nchannels - 1)  # 0 with one channel
        line, across = ("X", "Y") if median_axis == 0 else ("Y", "X")
        cleaned = da.blockwise(
            apply_correction,
            ("i", "g", "Y", "X"),
            sci,
            ("i", "g", "Y", "X"),
            background,
            ("i", "h"),
            stripes,
            ("i", "h", line, "c"),
            usable,
            ("i", "h"),
            da.from_array(channel, chunks=(along_chunks,)),
            (across,),
            concatenate=True,
            dtype=np.float32,
            meta=np.empty((0, 0, 0, 0), np.float32),
            name=f"clean_flicker_noise-{da.core.tokenize(sci, background, stripes, usable, median_axis)}",
            median_axis=median_axis,
        )
        return ds.assign(sci=(ds.sci.dims, cleaned))


def _scene_mask(ds: xr.Dataset, refs: Mapping[str, xr.Dataset], p: Params) -> da.Array:
    """(nmask, ny, nx) bool scene mask, one chunk: from ``user_mask`` or a draft rate."""
    nint, _, ny, nx = ds.sci.shape
    if p.user_mask is not None and str(p.user_mask).lower() != "none":
        user = read_user_mask(Path(p.user_mask))
        if user.shape[-2:] != (ny, nx) or (user.ndim == 3 and len(user) != nint):
            raise SkipStep(f"user_mask {p.user_mask} has shape {user.shape}, data {(nint, ny, nx)}")
        return da.from_array(user if user.ndim == 3 else user[None])
    from webbflow.steps.ramp_fit.step import RampFitStep

    draft = RampFitStep().build(ds, refs)
    rate = draft["sci" if p.single_mask else "sci_ints"].data
    rate = rate.rechunk(rate.shape)  # rate-sized: 1/(nints·ngroups) of the ramp
    nmask = 1 if p.single_mask else nint
    return da.from_delayed(
        dask.delayed(scene_mask, pure=True)(rate, n_sigma=p.n_sigma, single_mask=p.single_mask),
        (nmask, ny, nx),
        dtype=np.bool_,
    )


def read_user_mask(path: Path) -> np.ndarray:
    """A user mask: the ``SCI`` (else primary) image of a FITS file, True on background pixels.

    Raises
    ------
    InputError
        The file cannot be read or holds no 2-D/3-D image.
    """
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            hdu = hdul["SCI"] if "SCI" in hdul else hdul[0]
            data = None if hdu.data is None else np.asarray(hdu.data)
    except (OSError, ValueError) as exc:
        raise InputError(f"user_mask {path}: cannot read a FITS image ({exc})") from None
    if data is None or data.ndim not in (2, 3):
        raise InputError(f"user_mask {path}: expected a 2-D or 3-D image in SCI or the primary HDU")
    return data.astype(bool)


def _check_params(p: Params) -> None:
    """UsageError for the options that are not built."""
    not_built = {
        "autoparam": p.autoparam,
        "apply_flat_field": p.apply_flat_field,
        "fit_histogram": p.fit_histogram,
        "save_mask": p.save_mask,
        "save_background": p.save_background,
        "save_noise": p.save_noise,
    }
    for name, value in not_built.items():
        if value:
            raise UsageError(f"clean_flicker_noise.{name}=True is not built in webbflow")
    if p.background_method in ("model", "median_image"):
        raise UsageError(
            f"clean_flicker_noise.background_method={p.background_method!r} is not built; use median or None"
        )
