"""A synthetic MIRI imager exposure and matching reference files, for tests and benchmarks.

Not a simulation (see :mod:`webbflow.graphs.simulate`): a deterministic ramp with a
bias, a uniform background, a few Gaussian sources, a reset anomaly, a quadratic
non-linearity, read noise and a few cosmic-ray jumps, written as a jwst ``Level1bModel``
(``uncal``), plus MIRI references in the jwst layouts (MASK, SATURATION, LINEARITY, GAIN,
READNOISE, RESET, RSCD) covering exactly the exposure's window, which both jwst and
webbflow read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
from astropy.io import fits

from webbflow import dq
from webbflow.detectors import MIRI_SUBARRAYS
from webbflow.io.products import fits_product
from webbflow.model import RAMP_DIMS

BIAS, BACKGROUND, READ_NOISE, GAIN = 12000.0, 30.0, 6.0, 4.0  # DN, DN/s, DN, e-/DN
LINEAR_C2 = -2e-7  # raw = s + C2_RAW s^2 ; correction polynomial below inverts it to 1st order
RESET_AMPLITUDE, RESET_SCALE = 40.0, 2.0  # DN, groups
SATURATION = 60000.0


def miri_meta(subarray: str, nints: int, ngroups: int, readpatt: str = "FASTR1") -> dict[str, Any]:
    """jwst ``meta`` of a MIRI imager F770W exposure in ``subarray``."""
    sub = MIRI_SUBARRAYS[subarray]
    tframe = sub.frame_time
    return {
        "telescope": "JWST",
        "observation": {
            "date": "2024-01-01",
            "time": "00:00:00.000",
            "program_number": "09999",
            "observation_number": "001",
            "visit_number": "001",
            "visit_group": "01",
            "sequence_id": "1",
            "activity_id": "01",
            "exposure_number": "00001",
        },
        "instrument": {"name": "MIRI", "detector": "MIRIMAGE", "filter": "F770W", "band": "N/A"},
        "exposure": {
            "type": "MIR_IMAGE",
            "readpatt": readpatt,
            "nints": nints,
            "ngroups": ngroups,
            "nframes": 1,
            "groupgap": 0,
            "nsamples": 1,
            "sample_time": 10.0,
            "frame_time": tframe,
            "group_time": tframe,
            "frame_divisor": 1,
            "nresets_at_start": 1,
            "nresets_between_ints": 1,
            "drop_frames1": 0,
            "drop_frames3": 0,
            "zero_frame": False,
            "integration_start": 1,
            "integration_end": nints,
            "integration_time": round((ngroups - 1) * tframe, 5),
            "exposure_time": round((ngroups - 1) * tframe * nints, 5),
            "duration": round(tframe * nints * (ngroups + 1), 5),
            "start_time": 60310.0,
            "mid_time": 60310.001,
            "end_time": 60310.002,
            "noutputs": 4,
        },
        "subarray": {
            "name": subarray,
            "xstart": sub.xstart,
            "ystart": sub.ystart,
            "xsize": sub.xsize,
            "ysize": sub.ysize,
            "fastaxis": 1,
            "slowaxis": 2,
        },
    }


def _reset_anomaly(ngroups: int) -> np.ndarray:
    return (RESET_AMPLITUDE * np.exp(-np.arange(ngroups) / RESET_SCALE)).astype(np.float32)


def _block(
    block_info: Any = None, *, seed: int, nints: int, ngroups: int, tgroup: float, y0: int, x0: int
) -> np.ndarray:
    """One (integration, group, y, x) uint16 tile of the raw ramp, keyed by its position."""
    info = block_info[None]
    (ys, ye), (xs, xe) = info["array-location"][2:]
    y = np.arange(ys, ye)[:, None] + y0
    x = np.arange(xs, xe)[None, :] + x0
    rng = np.random.Generator(np.random.Philox(key=[seed, ys * 100003 + xs]))
    rate = np.full((ye - ys, xe - xs), BACKGROUND)
    for cy, cx, flux in ((y0 + 40, x0 + 30, 4000.0), (y0 + 20, x0 + 50, 800.0), (y0 + 90, x0 + 100, 20000.0)):
        rate += flux / (2 * np.pi * 1.5**2) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 1.5**2))
    rate = np.where(x % 1032 < 4, 0.0, rate)  # reference columns see no light
    rate = np.where(x % 1032 >= 1028, 0.0, rate)
    signal = np.empty((nints, ngroups, *rate.shape))
    for i in range(nints):
        # Poisson electrons per group interval (the first read one group after the reset), in DN
        step = rng.poisson(np.broadcast_to(np.maximum(rate * tgroup * GAIN, 0), (ngroups, *rate.shape)))
        electrons = np.cumsum(step, axis=0) / GAIN
        cr = rng.random(rate.shape) < 0.003
        when = rng.integers(1, ngroups, rate.shape)
        electrons += np.where(cr & (np.arange(ngroups)[:, None, None] >= when), 500.0, 0.0)
        signal[i] = electrons
    raw = signal + LINEAR_C2 * signal**2 + BIAS + _reset_anomaly(ngroups)[:, None, None]
    raw += rng.normal(0, READ_NOISE, raw.shape)
    return np.clip(np.rint(raw), 0, 65535).astype(np.uint16)


def write_miri_uncal(
    path: Path, subarray: str = "SUB128", nints: int = 3, ngroups: int = 10, *, seed: int = 7, tile: int = 256
) -> Path:
    """Write the synthetic MIRI ``uncal`` (``Level1bModel``, SCI uint16) and return ``path``."""
    import xarray as xr

    meta = miri_meta(subarray, nints, ngroups)
    sub = meta["subarray"]
    shape = (nints, ngroups, sub["ysize"], sub["xsize"])
    chunks = (nints, ngroups, min(tile, shape[2]), min(tile, shape[3]))
    sci = da.map_blocks(
        _block,
        chunks=da.core.normalize_chunks(chunks, shape),
        dtype=np.uint16,
        seed=seed,
        nints=nints,
        ngroups=ngroups,
        tgroup=meta["exposure"]["group_time"],
        y0=sub["ystart"] - 1,
        x0=sub["xstart"] - 1,
        meta=np.empty((0, 0, 0, 0), np.uint16),
    )
    coords = {
        "integration": np.arange(1, nints + 1),
        "group": np.arange(1, ngroups + 1),
        "y": np.arange(sub["ystart"] - 1, sub["ystart"] - 1 + sub["ysize"]),
        "x": np.arange(sub["xstart"] - 1, sub["xstart"] - 1 + sub["xsize"]),
    }
    ds = xr.Dataset({"sci": (RAMP_DIMS, sci)}, coords=coords, attrs={"meta": meta})
    product = fits_product(ds, Path(path), "uncal", overwrite=True)
    try:
        dask.compute(*product.prepare())
    except BaseException:
        product.abort()
        raise
    return product.finish()


def _dq_def() -> fits.BinTableHDU:
    names = ["DO_NOT_USE", "SATURATED", "DEAD", "HOT", "NO_SAT_CHECK", "NO_LIN_CORR", "REFERENCE_PIXEL"]
    values = [dq.FLAGS[n] for n in names]
    return fits.BinTableHDU.from_columns(
        [
            fits.Column("BIT", "J", array=[int(v).bit_length() - 1 for v in values]),
            fits.Column("VALUE", "K", array=values),
            fits.Column("NAME", "40A", array=names),
            fits.Column("DESCRIPTION", "80A", array=names),
        ],
        name="DQ_DEF",
    )


def _primary(reftype: str, subarray: str, **extra: Any) -> fits.PrimaryHDU:
    sub = MIRI_SUBARRAYS[subarray]
    hdu = fits.PrimaryHDU()
    hdu.header.update(
        {
            "REFTYPE": reftype.upper(),
            "INSTRUME": "MIRI",
            "DETECTOR": "MIRIMAGE",
            "SUBARRAY": subarray,
            "SUBSTRT1": sub.xstart,
            "SUBSTRT2": sub.ystart,
            "SUBSIZE1": sub.xsize,
            "SUBSIZE2": sub.ysize,
            "FASTAXIS": 1,
            "SLOWAXIS": 2,
            "EXP_TYPE": "MIR_IMAGE",
            "READPATT": "ANY",
            "USEAFTER": "2022-01-01T00:00:00",
            "AUTHOR": "webbflow tests",
            "PEDIGREE": "DUMMY",
            "DESCRIP": f"synthetic MIRI {reftype} for tests",
            "TELESCOP": "JWST",
            **extra,
        }
    )
    return hdu


def write_miri_references(out: Path, subarray: str, nints: int, ngroups: int) -> dict[str, Path]:
    """MIRI references for ``subarray`` in jwst layouts: ``{reftype: path}``."""
    out.mkdir(parents=True, exist_ok=True)
    sub = MIRI_SUBARRAYS[subarray]
    ny, nx = sub.ysize, sub.xsize
    x = np.arange(sub.xstart - 1, sub.xstart - 1 + nx)
    refcol = (x < 4) | (x >= 1028)
    mask = np.where(refcol[None, :], dq.REFERENCE_PIXEL, 0).astype(np.uint32) * np.ones((ny, 1), np.uint32)
    mask[ny // 3, nx // 2] |= dq.DO_NOT_USE | dq.DEAD
    mask[ny // 2, nx // 3] |= dq.DO_NOT_USE | dq.HOT
    ones = np.ones((ny, nx), np.float32)
    zeros_dq = np.zeros((ny, nx), np.uint32)
    paths: dict[str, Path] = {}

    def write(reftype: str, hdus: list[fits.ImageHDU | fits.BinTableHDU], **extra: Any) -> None:
        path = out / f"miri_{subarray.lower()}_{reftype}.fits"
        fits.HDUList([_primary(reftype, subarray, **extra), *hdus]).writeto(path, overwrite=True)
        paths[reftype] = path

    write("mask", [fits.ImageHDU(mask, name="DQ"), _dq_def()])
    write(
        "saturation",
        [fits.ImageHDU(SATURATION * ones, name="SCI"), fits.ImageHDU(zeros_dq, name="DQ"), _dq_def()],
    )
    # corrected = c0 + c1 r + c2 r^2 on the raw DN (MIRI has no superbias: bias included)
    coeffs = np.stack([0 * ones, ones, -LINEAR_C2 * ones]).astype(np.float32)
    write("linearity", [fits.ImageHDU(coeffs, name="COEFFS"), fits.ImageHDU(zeros_dq, name="DQ"), _dq_def()])
    write("gain", [fits.ImageHDU(GAIN * ones, name="SCI")], BUNIT="electrons/DN")
    write("readnoise", [fits.ImageHDU(READ_NOISE * ones, name="SCI")], BUNIT="DN")
    reset = np.broadcast_to(_reset_anomaly(ngroups)[None, :, None, None], (2, ngroups, ny, nx)).astype(
        np.float32
    )
    write(
        "reset",
        [
            fits.ImageHDU(reset, name="SCI"),
            fits.ImageHDU(np.zeros_like(reset), name="ERR"),
            fits.ImageHDU(zeros_dq, name="DQ"),
            _dq_def(),
        ],
        READPATT="FASTR1",
        NINTS=2,
        NGROUPS=ngroups,
    )
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column("subarray", "17A", array=[subarray, "FULL"]),
            fits.Column("readpatt", "12A", array=["FASTR1", "FASTR1"]),
            fits.Column("group_skip1", "J", array=[1, 1]),
            fits.Column("group_skip", "J", array=[3, 3]),
        ],
        name="RSCD_GROUP_SKIP",
    )
    rscd_primary = _primary("rscd", subarray)
    path = out / f"miri_{subarray.lower()}_rscd.fits"
    fits.HDUList([rscd_primary, table]).writeto(path, overwrite=True)
    paths["rscd"] = path
    return paths


# -- simulated exposures and the embedded default references ----------------------------------
#: Reference types MIRI imager Detector1 reads (jwst 3.0 and webbflow; no superbias, no ipc).
MIRI_REFTYPES = ("mask", "saturation", "linearity", "dark", "gain", "readnoise", "reset", "rscd", "emicorr")
#: Full-frame references jwst 3.0 does not cut to a subarray exposure (CRDS serves one per subarray).
UNCUT_BY_JWST = ("dark", "reset")


def simulate_miri_uncal(
    out: Path, subarray: str, nints: int, ngroups: int, *, seed: int = 11, background: str = "high"
) -> Path:
    """Simulate a MIRI imager F770W FASTR1 ``uncal`` with :mod:`webbflow.graphs.simulate`.

    The simulator reads the embedded default references (``$WEBBFLOW_CACHE``), so the
    ramp carries their reset anomaly, dark, non-linearity and EMI, plus cosmic rays and
    showers. Returns the uncal's path (in ``out``).
    """
    from webbflow.graphs.runner import RunOptions, run_simulate
    from webbflow.sim.config import config_from_dict

    cfg = config_from_dict(
        {
            "instrument": "MIRI",
            "detector": "MIRIMAGE",
            "subarray": subarray,
            "filter": "F770W",
            "readout": {"readpatt": "FASTR1", "ngroups": ngroups, "nints": nints},
            "background": {"level": background},
            "seed": seed,
            "output": {"directory": str(out), "products": ["uncal"]},
        }
    )
    paths = run_simulate([cfg], RunOptions(output_dir=Path(out), progress=False))
    return next(p for p in paths if p.name.endswith("_uncal.fits"))


def default_miri_references(ngroups: int) -> dict[str, Path]:
    """The embedded default MIRIMAGE references (full frame; dark with ``ngroups`` groups)."""
    from webbflow.io.reffiles.defaults import default_reference

    return {rt: default_reference(rt, "MIRIMAGE", ngroups if rt == "dark" else None) for rt in MIRI_REFTYPES}


def jwst_miri_references(refs: dict[str, Path], subarray: str, out: Path) -> dict[str, Path]:
    """``refs`` with the :data:`UNCUT_BY_JWST` types cut to ``subarray`` (copies in ``out``)."""
    from webbflow.io.reffiles.miri_detector import cut_to_subarray

    if subarray.strip().upper() == "FULL":
        return dict(refs)
    out.mkdir(parents=True, exist_ok=True)
    return {
        rt: cut_to_subarray(p, out / f"{p.stem}_{subarray.lower()}.fits", subarray)
        if rt in UNCUT_BY_JWST
        else p
        for rt, p in refs.items()
    }


def jwst_jump_parameters(ds: Any) -> dict[str, Any]:
    """The jump parameters webbflow resolves for ``ds``'s instrument, as jwst ``JumpStep`` names.

    jwst with CRDS parameter files off runs its code defaults; CRDS ``pars-jumpstep``
    gives MIRI other values, which webbflow builds in (``steps/jump`` ``MIRI_DEFAULTS``).
    Passing them keeps the oracle on the same parameters. ``max_shower_amplitude`` is
    not passed: jwst 3.0 does not forward it to stcal.
    """
    from webbflow.steps.jump.step import CODE_DEFAULTS, JumpStep, resolve_defaults

    resolved = resolve_defaults(JumpStep.Params(), ds)
    return {name: getattr(resolved, name) for name in CODE_DEFAULTS}
