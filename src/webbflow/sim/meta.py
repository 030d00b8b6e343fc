"""The jwst metadata of a raw exposure: identifiers, readout timing, window and optics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from astropy.time import Time

from webbflow.detectors import Detector

EXP_TYPE: Final = {"NIRCAM": "NRC_IMAGE", "NIRISS": "NIS_IMAGE", "FGS": "FGS_IMAGE", "MIRI": "MIR_IMAGE"}
#: Samples per pixel read (``NSAMPLES``): MIRI SLOW averages 9 (jwst ``emicorr`` times its reads with it).
_MIRI_NSAMPLES: Final = {"FAST": 1, "FASTR1": 1, "SLOW": 9, "SLOWR1": 9}


@dataclass(frozen=True)
class Identity:
    """Program, observation and exposure numbers (the parts of a jwst file name)."""

    program: str = "09999"
    observation: int = 1
    visit: int = 1
    visit_group: int = 1
    sequence: int = 1
    activity: str = "01"  # two base-36 characters, as in jwst file names
    exposure: int = 1

    def root(self, detector: str) -> str:
        """``jw<PPPPP><OOO><VVV>_<GG><S><AA>_<EEEEE>_<detector>`` (no suffix)."""
        return (
            f"jw{self.program}{self.observation:03d}{self.visit:03d}_{self.visit_group:02d}"
            f"{self.sequence:1d}{self.activity}_{self.exposure:05d}_{detector.lower()}"
        )

    def meta(self) -> dict[str, Any]:
        """The ``meta.observation`` entries."""
        p, o, v = self.program, f"{self.observation:03d}", f"{self.visit:03d}"
        return {
            "program_number": p,
            "observation_number": o,
            "visit_number": v,
            "visit_group": f"{self.visit_group:02d}",
            "sequence_id": f"{self.sequence:1d}",
            "activity_id": self.activity,
            "exposure_number": f"{self.exposure:05d}",
            "obs_id": f"V{p}{o}{v}P{0:08d}{self.visit_group:02d}{self.sequence:1d}{self.activity}",
            "visit_id": f"{p}{o}{v}",
        }


def exposure_meta(
    det: Detector,
    *,
    readpatt: str,
    nints: int,
    ngroups: int,
    nframes: int,
    groupgap: int,
    frame_time: float,
    noutputs: int,
    window: tuple[int, int, int, int],
    subarray_name: str,
    identity: Identity,
    date_obs: str,
    time_obs: str,
    filter: str = "",
    pupil: str = "",
) -> dict[str, Any]:
    """A raw exposure's jwst ``meta`` (nested dict with datamodel paths).

    Timing follows the jwst definitions: ``group_time = frame_time * (nframes +
    groupgap)``, ``integration_time = (ngroups - 1) * group_time`` (the effective
    time a ramp fit spans), one reset frame before each integration.

    MIRI: ``frame_time`` from :func:`webbflow.detectors.miri_frame_time` (depends on the subarray
    and FAST/SLOW), ``nframes`` 1 and ``groupgap`` 0 (``READ_PATTERNS["MIRI"]``), ``EXP_TYPE``
    ``MIR_IMAGE``, ``NSAMPLES`` 1 (FAST) or 9 (SLOW), no pupil; :func:`miri_exposure_meta` fills
    those in from the readout and subarray.
    """
    xstart, ystart, xsize, ysize = window
    tgroup = frame_time * (nframes + groupgap)
    nreset = 1
    frames = ngroups * (nframes + groupgap) - groupgap
    duration = frame_time * (nints * (nreset + frames))
    start = Time(f"{date_obs}T{time_obs}", scale="utc").mjd
    instrument: dict[str, Any] = {"name": det.instrument, "detector": det.name}
    if det.instrument == "NIRCAM":
        instrument.update(module=det.module, channel=det.channel)
    if filter:
        instrument["filter"] = filter
    if pupil and det.instrument != "MIRI":  # MIRI has no pupil wheel
        instrument["pupil"] = pupil
    return {
        "telescope": "JWST",
        "filename": f"{identity.root(det.name)}_uncal.fits",
        "observation": {"date": date_obs, "time": time_obs, **identity.meta()},
        "instrument": instrument,
        "exposure": {
            "type": EXP_TYPE[det.instrument],
            "readpatt": readpatt,
            "nints": nints,
            "ngroups": ngroups,
            "nframes": nframes,
            "groupgap": groupgap,
            "nsamples": _MIRI_NSAMPLES.get(readpatt, 1) if det.instrument == "MIRI" else 1,
            "sample_time": 10.0,
            "frame_time": frame_time,
            "group_time": round(tgroup, 5),
            "frame_divisor": nframes,
            "nresets_at_start": nreset,
            "nresets_between_ints": nreset,
            "drop_frames1": 0,
            "drop_frames3": 0,
            "zero_frame": False,
            "integration_start": 1,
            "integration_end": nints,
            "integration_time": round((ngroups - 1) * tgroup, 5),
            "exposure_time": round((ngroups - 1) * tgroup * nints, 5),
            "duration": round(duration, 5),
            "start_time": start,
            "mid_time": start + duration / 2 / 86400,
            "end_time": start + duration / 86400,
            "noutputs": noutputs,
        },
        "subarray": {
            "name": subarray_name,
            "xstart": xstart,
            "ystart": ystart,
            "xsize": xsize,
            "ysize": ysize,
            "fastaxis": det.fastaxis,
            "slowaxis": det.slowaxis,
        },
    }


def miri_exposure_meta(
    *,
    readpatt: str,
    nints: int,
    ngroups: int,
    subarray: str,
    identity: Identity,
    date_obs: str,
    time_obs: str,
    filter: str,
) -> dict[str, Any]:
    """A MIRI imager raw exposure's jwst ``meta``: :func:`exposure_meta` with MIRI's readout.

    ``SUBARRAY`` is a :data:`webbflow.detectors.MIRI_SUBARRAYS` name (``FULL``, ``SUB256``...): its
    window gives ``SUBSTRT``/``SUBSIZE`` and, with ``readpatt``, ``TFRAME`` = ``TGROUP``.
    Merge :meth:`webbflow.sim.geometry.Geometry.meta` on top for the WCS and aperture.
    """
    from webbflow.detectors import MIRI_SUBARRAYS, MIRIMAGE, READ_PATTERNS, miri_frame_time

    name = subarray.strip().upper()
    tframe = miri_frame_time(name, readpatt)  # UsageError for an unknown subarray or SLOW subarray
    sub = MIRI_SUBARRAYS[name]
    nframes, groupgap = READ_PATTERNS["MIRI"][readpatt]
    return exposure_meta(
        MIRIMAGE,
        readpatt=readpatt,
        nints=nints,
        ngroups=ngroups,
        nframes=nframes,
        groupgap=groupgap,
        frame_time=tframe,
        noutputs=MIRIMAGE.namps,
        window=(sub.xstart, sub.ystart, sub.xsize, sub.ysize),
        subarray_name=name,
        identity=identity,
        date_obs=date_obs,
        time_obs=time_obs,
        filter=filter,
    )
