"""Writers of the embedded default MIRI imager Detector1 references (jwst formats).

``mask`` (``MaskModel``), ``saturation`` (``SaturationModel``), ``linearity``
(``LinearityModel``), ``dark`` (``DarkMIRIModel``), ``gain`` (``GainModel``),
``readnoise`` (``ReadnoiseModel``), ``reset`` (``ResetModel``), ``rscd``
(``RSCDModel``) and ``emicorr`` (``EmiModel``, ASDF). The arrays and the choices
behind them are in :mod:`.miri_arrays`. There is no MIRI superbias or IPC
default (jwst's MIRI Detector1 has no superbias step and no IPC reference).

:mod:`.defaults` merges :data:`WRITERS` / :data:`DATAMODELS` with those of
:mod:`.miri_imaging` for MIRI detectors. Every writer writes the same bytes on
every run (no dates), streaming the large 4-D cubes plane by plane.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import numpy as np
from astropy.io import fits

from webbflow.detectors import MIRI_SUBARRAYS, Detector
from webbflow.errors import UsageError
from webbflow.io.reffiles import arrays, defaults
from webbflow.io.reffiles import miri_arrays as ma
from webbflow.io.reffiles.emicorr import write_emicorr

#: jwst data model of each MIRI Detector1 default.
DATAMODELS: Final = {
    "mask": "MaskModel",
    "saturation": "SaturationModel",
    "linearity": "LinearityModel",
    "dark": "DarkMIRIModel",
    "gain": "GainModel",
    "readnoise": "ReadnoiseModel",
    "reset": "ResetModel",
    "rscd": "RSCDModel",
    "emicorr": "EmiModel",
}

#: Local DQ_DEF bits of the MIRI mask: the near-infrared ones plus NON_SCIENCE.
MASK_BITS: Final = (*defaults.MASK_BITS, "NON_SCIENCE")

#: ``EXP_TYPE`` values the imager mask is for (the non-imaging area is NON_SCIENCE).
IMAGING_EXP_TYPES: Final = ("MIR_IMAGE", "MIR_TACQ", "MIR_TACONFIRM", "MIR_DARKIMG", "MIR_FLATIMAGE")


def _header(det: Detector, reftype: str, descrip: str, **extra: object) -> fits.Header:
    return defaults.primary_header(det, reftype, descrip, **extra)


def _exptype(types: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    return {
        "EXP_TYPE": ("ANY", "Type of data in the exposure"),
        "P_EXP_TY": ("|".join(types) + "|", ""),
        "READPATT": ("ANY", "Readout pattern"),
    }


def _write_mask(det: Detector, tmp: Path, _: int | None) -> None:
    h = _header(det, "mask", "webbflow default MIRI imager bad-pixel mask", **_exptype(IMAGING_EXP_TYPES))
    local = defaults._to_local(ma.mask_dq(det), MASK_BITS)
    defaults._write(tmp, h, [defaults._image(local, "DQ"), defaults.dq_def_hdu(MASK_BITS, local_bits=True)])


def _write_saturation(det: Detector, tmp: Path, _: int | None) -> None:
    sci, dqarr = arrays.saturation(det)
    h = _header(det, "saturation", "webbflow default MIRI saturation thresholds (raw DN)")
    hdus = [defaults._image(sci, "SCI", "DN"), defaults._image(dqarr, "DQ")]
    defaults._write(tmp, h, [*hdus, defaults.dq_def_hdu(("NO_SAT_CHECK",), local_bits=False)])


def _write_linearity(det: Detector, tmp: Path, _: int | None) -> None:
    coeffs, dqarr = ma.linearity(det)
    h = _header(det, "linearity", "webbflow default MIRI linearity coefficients (raw DN)")
    hdus = [defaults._image(coeffs, "COEFFS"), defaults._image(dqarr, "DQ")]
    defaults._write(tmp, h, [*hdus, defaults.dq_def_hdu(("NO_LIN_CORR",), local_bits=False)])


def _write_gain(det: Detector, tmp: Path, _: int | None) -> None:
    h = _header(det, "gain", "webbflow default MIRI gain (e-/DN)")
    defaults._write(tmp, h, [defaults._image(arrays.gain(det), "SCI", "ELECTRONS/DN")])


def _write_readnoise(det: Detector, tmp: Path, _: int | None) -> None:
    h = _header(
        det, "readnoise", "webbflow default MIRI CDS read noise (DN)", READPATT="ANY", NOUTPUTS=det.namps
    )
    defaults._write(tmp, h, [defaults._image(arrays.readnoise(det), "SCI", "DN")])


def _stream_cube(tmp: Path, shape: tuple[int, ...], planes: Iterator[np.ndarray], bunit: str) -> None:
    """Append a float32 SCI image of ``shape`` to ``tmp``, written plane by plane (C order)."""
    sci_header = fits.ImageHDU(np.zeros((1,) * len(shape), np.float32), name="SCI").header
    for axis, size in enumerate(reversed(shape), start=1):
        sci_header[f"NAXIS{axis}"] = size
    sci_header["BUNIT"] = bunit
    stream = fits.StreamingHDU(str(tmp), sci_header)
    try:
        for plane in planes:
            stream.write(plane)
    finally:
        stream.close()


def _write_dark(det: Detector, tmp: Path, frames: int | None) -> None:
    """``DarkMIRIModel``: SCI (2, groups, y, x) float32 DN streamed; DQ (2, 1, y, x); no ERR."""
    ngroups = int(frames or defaults.MIN_DARK_FRAMES)
    rate_dn = ma.dark_rate_dn(det)
    light = ~det.reference_mask()
    h = _header(
        det,
        "dark",
        f"webbflow default MIRI dark, {ma.DARK_NINTS} integrations x {ngroups} groups (DN)",
        **defaults._exptype_cards(det),
        NFRAMES=1,
        GROUPGAP=0,
        NGROUPS=ngroups,
        NINTS=ma.DARK_NINTS,
        NOUTPUTS=det.namps,
        TFRAME=det.frame_time_full,
        AVDRKCUR=float(np.mean(arrays.dark_rate(det)[light])),
    )
    defaults._write(tmp, h, [])
    planes = (ma.dark_plane(det, rate_dn, i, g) for i in range(ma.DARK_NINTS) for g in range(ngroups))
    _stream_cube(tmp, (ma.DARK_NINTS, ngroups, det.ny, det.nx), planes, "DN")
    fits.append(tmp, ma.dark_dq(det), fits.Header([("EXTNAME", "DQ")]))
    with fits.open(tmp, mode="append") as hdul:
        hdul.append(defaults.dq_def_hdu(("HOT", "WARM"), local_bits=False))


def _write_reset(det: Detector, tmp: Path, _: int | None) -> None:
    """``ResetModel``: SCI (2, RESET_NGROUPS, y, x) float32 DN streamed; DQ (y, x) zeros."""
    amplitudes = ma.reset_amplitudes(det)
    shape = ma.reset_shape()
    nints = amplitudes.shape[0]
    h = _header(
        det,
        "reset",
        f"webbflow default MIRI reset anomaly, {nints} integrations x {ma.RESET_NGROUPS} groups (DN)",
        **defaults._exptype_cards(det),
        NGROUPS=ma.RESET_NGROUPS,
        NINTS=nints,
    )
    defaults._write(tmp, h, [])
    planes = ((amplitudes[i] * shape[g]).astype(np.float32) for i in range(nints) for g in range(shape.size))
    _stream_cube(tmp, (nints, shape.size, det.ny, det.nx), planes, "DN")
    fits.append(tmp, np.zeros((det.ny, det.nx), np.uint32), fits.Header([("EXTNAME", "DQ")]))
    with fits.open(tmp, mode="append") as hdul:
        hdul.append(defaults.dq_def_hdu(("DO_NOT_USE",), local_bits=False))


def _write_rscd(det: Detector, tmp: Path, _: int | None) -> None:
    """``RSCDModel``: table RSCD_GROUP_SKIP (subarray, readpatt, group_skip1, group_skip)."""
    rows = ma.rscd_rows()
    columns = [
        fits.Column("subarray", "17A", array=[r[0] for r in rows]),
        fits.Column("readpatt", "12A", array=[r[1] for r in rows]),
        fits.Column("group_skip1", "J", array=np.array([r[2] for r in rows], np.int32)),
        fits.Column("group_skip", "J", array=np.array([r[3] for r in rows], np.int32)),
    ]
    table = fits.BinTableHDU.from_columns(columns, name="RSCD_GROUP_SKIP")
    h = _header(det, "rscd", "webbflow default MIRI RSCD groups to skip", **defaults._exptype_cards(det))
    defaults._write(tmp, h, [table])


def _write_emicorr(det: Detector, tmp: Path, _: int | None) -> None:
    """``EmiModel`` ASDF via :func:`.emicorr.write_emicorr` (frequencies, waveforms, clocks)."""
    freqs = {name: (hz, ma.emi_waveform(name)) for name, (hz, _, _) in ma.EMI_FREQUENCIES.items()}
    write_emicorr(tmp, freqs, ma.emi_cases(), description="webbflow default MIRI EMICORR (nominal)")


def cut_to_subarray(full: str | Path, out: str | Path, subarray: str) -> Path:
    """Write the MIRI ``subarray`` cut of a full-frame image reference (dark, reset, …).

    jwst's ``dark_current`` and ``reset`` steps do not cut full-frame references to a
    subarray exposure (CRDS serves per-subarray files); webbflow's opener does. Every
    image extension is cut on its last two axes; tables are copied; the primary header
    gets the subarray's ``SUBARRAY``/``SUBSTRT``/``SUBSIZE``.

    Raises
    ------
    UsageError
        For an unknown MIRI subarray.
    """
    sub = MIRI_SUBARRAYS.get(subarray.strip().upper())
    if sub is None:
        raise UsageError(f"unknown MIRI SUBARRAY {subarray!r} (known: {', '.join(MIRI_SUBARRAYS)})")
    cut = (
        Ellipsis,
        slice(sub.ystart - 1, sub.ystart - 1 + sub.ysize),
        slice(sub.xstart - 1, sub.xstart - 1 + sub.xsize),
    )
    with fits.open(full) as hdul:
        primary = hdul[0].header.copy()
        primary.update(SUBARRAY=sub.name, SUBSTRT1=sub.xstart, SUBSTRT2=sub.ystart)
        primary.update(SUBSIZE1=sub.xsize, SUBSIZE2=sub.ysize, FILENAME=Path(out).name)
        hdus: list[Any] = [fits.PrimaryHDU(header=primary)]
        for hdu in hdul[1:]:
            if isinstance(hdu, fits.ImageHDU) and hdu.data is not None and hdu.data.ndim >= 2:
                hdus.append(fits.ImageHDU(hdu.data[cut], header=hdu.header, name=hdu.name))
            else:
                hdus.append(hdu.copy())
        fits.HDUList(hdus).writeto(out, overwrite=True)
    return Path(out)


WRITERS: Final[dict[str, defaults.Writer]] = {
    "mask": _write_mask,
    "saturation": _write_saturation,
    "linearity": _write_linearity,
    "dark": _write_dark,
    "gain": _write_gain,
    "readnoise": _write_readnoise,
    "reset": _write_reset,
    "rscd": _write_rscd,
    "emicorr": _write_emicorr,
}
