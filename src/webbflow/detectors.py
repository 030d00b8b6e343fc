"""Static facts about the JWST detectors webbflow handles.

One frozen :class:`Detector` per detector name (the FITS ``DETECTOR`` keyword):
NIRCam (``NRCA1``-``NRCA4``, ``NRCALONG``, ``NRCB1``-``NRCB4``, ``NRCBLONG``),
NIRISS (``NIS``) and FGS (``GUIDER1``, ``GUIDER2``). All are 2048 × 2048
HAWAII-2RG arrays with a 4-pixel reference-pixel border and four 512-pixel wide
readout amplifiers.

The numbers are *nominal*: the order of magnitude published for each detector
(gain, read noise, dark current, bias, saturation, IPC), good enough to build
the embedded default reference files and realistic simulations, not a
substitute for the calibrated CRDS reference files.

Orientation is the DMS (science) frame of the jwst files; ``fastaxis`` and
``slowaxis`` are the values of the ``FASTAXIS``/``SLOWAXIS`` keywords (1 = x,
2 = y, negative when the readout runs towards decreasing index). NIRCam reads
along x, so its amplifiers are 512-column stripes; NIRISS and FGS read along y
in the DMS frame, so theirs are 512-row stripes (see :attr:`Detector.amp_axis`).

The MIRI imager (``MIRIMAGE``, :data:`MIRI_DETECTORS`) is a 1032 × 1024 (x × y)
Si:As array read by four amplifiers interleaved by column (the amplifier of a
pixel is ``x mod 4``), with 4 reference columns on the left and right (x 0-3 and
1028-1031, 0-based) and no reference rows (jwst ``refpix`` documentation). Its
frame time depends on the subarray and on FAST/SLOW sampling (:func:`miri_frame_time`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

import numpy as np

from webbflow.errors import UsageError, suggest

#: Full-frame frame time (s) of the NIRCam detectors, 10 µs samples, 4 outputs.
NIRCAM_FULL_FRAME_TIME: Final = 10.73677
#: Full-frame frame time (s) of the NIRISS and FGS detectors.
NIS_FGS_FULL_FRAME_TIME: Final = 10.73676


@dataclass(frozen=True)
class Detector:
    """Nominal properties of one JWST near-infrared detector.

    Attributes
    ----------
    name
        ``DETECTOR`` keyword value (``"NRCA1"``).
    instrument
        ``INSTRUME`` keyword value (``"NIRCAM"``, ``"NIRISS"``, ``"FGS"``).
    channel
        NIRCam channel ``"SHORT"``/``"LONG"``; ``""`` for NIRISS/FGS.
    module
        NIRCam module ``"A"``/``"B"``; ``""`` otherwise.
    gain
        Mean gain, e⁻/DN.
    read_noise
        Read noise, DN, as jwst ``READNOISE`` references hold it: the noise of a
        correlated double sample (a difference of two reads), so one read carries
        ``read_noise / sqrt(2)``.
    dark_current
        Mean dark current, e⁻/s.
    saturation
        Mean saturation level, raw DN (bias included, as jwst ``SATURATION``).
    bias
        Mean bias (superbias) level, DN.
    amp_bias_offsets
        Offset of each amplifier's bias from ``bias``, DN, amplifier 1 first.
    nonlinearity
        Fractional signal deficit at saturation: a pixel read at its (bias
        subtracted) saturation level ``S`` has collected ``S * (1 + nonlinearity)``
        worth of linear signal, approximately.
    ipc_alpha
        Inter-pixel capacitance coupling to each of the 4 nearest neighbours.
    frame_time_full
        Full-frame frame time, s.
    fastaxis, slowaxis
        ``FASTAXIS``/``SLOWAXIS`` keyword values (DMS orientation).
    ny, nx
        Full-frame size, pixels.
    refpix
        Width of the reference-pixel border on every side, pixels.
    namps, amp_width
        Number of readout amplifiers and pixels per amplifier stripe.
    refpix_rows
        ``True`` when the reference-pixel border also runs along the bottom and
        top rows (near-infrared); ``False`` for MIRI (left/right columns only).
    amp_layout
        ``"stripes"``: each amplifier reads ``amp_width`` contiguous pixels along
        :attr:`amp_axis`; ``"interleaved"`` (MIRI): amplifier ``x mod namps``.
    """

    name: str
    instrument: str
    channel: str
    module: str
    gain: float
    read_noise: float
    dark_current: float
    saturation: float
    bias: float
    amp_bias_offsets: tuple[float, float, float, float]
    nonlinearity: float
    ipc_alpha: float
    frame_time_full: float
    fastaxis: int
    slowaxis: int
    ny: int = 2048
    nx: int = 2048
    refpix: int = 4
    namps: int = 4
    amp_width: int = 512
    refpix_rows: bool = True
    amp_layout: Literal["stripes", "interleaved"] = "stripes"

    @property
    def amp_axis(self) -> Literal["x", "y"]:
        """The axis along which the amplifier stripes are laid out (the fast axis)."""
        return "x" if abs(self.fastaxis) == 1 else "y"

    @property
    def amplifiers(self) -> tuple[tuple[int, int], ...]:
        """Half-open 0-based ``(start, stop)`` of each amplifier stripe along :attr:`amp_axis`.

        Raises
        ------
        UsageError
            For interleaved amplifiers (MIRI), which are not stripes: use :meth:`amplifier`.
        """
        if self.amp_layout != "stripes":
            raise UsageError(
                f"{self.name}: amplifiers are interleaved by column, use Detector.amplifier(x, y)"
            )
        return tuple((i * self.amp_width, (i + 1) * self.amp_width) for i in range(self.namps))

    def amplifier(self, x: np.ndarray | int, y: np.ndarray | int) -> np.ndarray:
        """0-based amplifier index of full-frame 0-based pixel(s) ``(x, y)`` (broadcast)."""
        xs, ys = np.broadcast_arrays(np.asarray(x), np.asarray(y))
        if self.amp_layout == "interleaved":
            return np.asarray(xs % self.namps, dtype=np.int64)
        along = xs if self.amp_axis == "x" else ys
        return np.asarray(np.clip(along // self.amp_width, 0, self.namps - 1), dtype=np.int64)

    def reference_mask(self) -> np.ndarray:
        """(ny, nx) bool full-frame mask, ``True`` on reference pixels."""
        mask = np.zeros((self.ny, self.nx), dtype=bool)
        b = self.refpix
        mask[:, :b] = mask[:, self.nx - b :] = True
        if self.refpix_rows:
            mask[:b, :] = mask[self.ny - b :, :] = True
        return mask

    @property
    def exp_types(self) -> tuple[str, ...]:
        """The ``EXP_TYPE`` values of this detector's instrument."""
        return EXP_TYPES[self.instrument]


#: ``EXP_TYPE`` values per instrument (from the jwst ``keyword_exptype`` list).
EXP_TYPES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "NIRCAM": (
            "NRC_IMAGE",
            "NRC_GRISM",
            "NRC_WFSS",
            "NRC_TSIMAGE",
            "NRC_TSGRISM",
            "NRC_CORON",
            "NRC_TACQ",
            "NRC_TACONFIRM",
            "NRC_FOCUS",
            "NRC_DARK",
            "NRC_FLAT",
            "NRC_LED",
            "NRC_WFSC",
        ),
        "NIRISS": (
            "NIS_IMAGE",
            "NIS_WFSS",
            "NIS_SOSS",
            "NIS_AMI",
            "NIS_TACQ",
            "NIS_TACONFIRM",
            "NIS_FOCUS",
            "NIS_DARK",
            "NIS_LAMP",
            "NIS_EXTCAL",
        ),
        "FGS": (
            "FGS_IMAGE",
            "FGS_FOCUS",
            "FGS_SKYFLAT",
            "FGS_INTFLAT",
            "FGS_DARK",
            "FGS_ACQ1",
            "FGS_ACQ2",
            "FGS_FINEGUIDE",
            "FGS_ID-IMAGE",
            "FGS_ID-STACK",
            "FGS_TRACK",
        ),
        "MIRI": (
            "MIR_IMAGE",
            "MIR_TACQ",
            "MIR_TACONFIRM",
            "MIR_LYOT",
            "MIR_4QPM",
            "MIR_CORONCAL",
            "MIR_LRS-FIXEDSLIT",
            "MIR_LRS-SLITLESS",
            "MIR_WFSS",
            "MIR_MRS",
            "MIR_DARKIMG",
            "MIR_DARKMRS",
            "MIR_DARKALL",
            "MIR_FLATIMAGE",
            "MIR_FLATIMAGE-EXT",
            "MIR_FLATMRS",
            "MIR_FLATMRS-EXT",
        ),
    }
)


def _nrc(
    name: str,
    gain: float,
    rn: float,
    dark: float,
    sat: float,
    bias: float,
    offsets: tuple[float, float, float, float],
    fast: int,
) -> Detector:
    long = name.endswith("LONG")
    return Detector(
        name=name,
        instrument="NIRCAM",
        channel="LONG" if long else "SHORT",
        module=name[3],
        gain=gain,
        read_noise=rn,
        dark_current=dark,
        saturation=sat,
        bias=bias,
        amp_bias_offsets=offsets,
        nonlinearity=0.07 if long else 0.09,
        ipc_alpha=0.0055 if long else 0.0050,
        frame_time_full=NIRCAM_FULL_FRAME_TIME,
        fastaxis=fast,
        slowaxis=2 * (-1 if fast > 0 else 1),
    )


_TABLE: Final[tuple[Detector, ...]] = (
    _nrc("NRCA1", 2.07, 6.6, 0.0019, 59500.0, 12400.0, (0.0, 85.0, -40.0, 120.0), -1),
    _nrc("NRCA2", 2.01, 6.2, 0.0022, 60200.0, 11900.0, (0.0, -60.0, 35.0, 90.0), 1),
    _nrc("NRCA3", 2.16, 6.9, 0.0025, 58800.0, 12650.0, (0.0, 40.0, 110.0, -75.0), -1),
    _nrc("NRCA4", 2.01, 6.4, 0.0030, 60700.0, 12100.0, (0.0, -95.0, 20.0, 65.0), 1),
    _nrc("NRCALONG", 1.82, 8.1, 0.0280, 61400.0, 12250.0, (0.0, 55.0, -30.0, 140.0), -1),
    _nrc("NRCB1", 2.08, 6.5, 0.0021, 59900.0, 12300.0, (0.0, 70.0, -55.0, 45.0), 1),
    _nrc("NRCB2", 2.02, 6.3, 0.0024, 60400.0, 12050.0, (0.0, -35.0, 80.0, 15.0), -1),
    _nrc("NRCB3", 1.97, 6.0, 0.0020, 61000.0, 11800.0, (0.0, 25.0, -90.0, 60.0), 1),
    _nrc("NRCB4", 2.13, 6.8, 0.0027, 58500.0, 12550.0, (0.0, -70.0, 50.0, 100.0), -1),
    _nrc("NRCBLONG", 1.79, 8.4, 0.0310, 61800.0, 12350.0, (0.0, 45.0, 95.0, -20.0), 1),
    Detector(
        name="NIS",
        instrument="NIRISS",
        channel="",
        module="",
        gain=1.61,
        read_noise=7.6,
        dark_current=0.0124,
        saturation=59000.0,
        bias=12200.0,
        amp_bias_offsets=(0.0, 60.0, -45.0, 75.0),
        nonlinearity=0.08,
        ipc_alpha=0.0060,
        frame_time_full=NIS_FGS_FULL_FRAME_TIME,
        fastaxis=-2,
        slowaxis=-1,
    ),
    Detector(
        name="GUIDER1",
        instrument="FGS",
        channel="",
        module="",
        gain=1.60,
        read_noise=8.9,
        dark_current=0.0190,
        saturation=58200.0,
        bias=11950.0,
        amp_bias_offsets=(0.0, -50.0, 65.0, 30.0),
        nonlinearity=0.08,
        ipc_alpha=0.0060,
        frame_time_full=NIS_FGS_FULL_FRAME_TIME,
        fastaxis=-2,
        slowaxis=1,
    ),
    Detector(
        name="GUIDER2",
        instrument="FGS",
        channel="",
        module="",
        gain=1.63,
        read_noise=8.6,
        dark_current=0.0210,
        saturation=58700.0,
        bias=12150.0,
        amp_bias_offsets=(0.0, 35.0, -70.0, 55.0),
        nonlinearity=0.08,
        ipc_alpha=0.0060,
        frame_time_full=NIS_FGS_FULL_FRAME_TIME,
        fastaxis=2,
        slowaxis=-1,
    ),
)

#: (NFRAMES, GROUPGAP) of the readout patterns, per instrument.
READ_PATTERNS: Final[dict[str, dict[str, tuple[int, int]]]] = {
    "NIRCAM": {
        "RAPID": (1, 0),
        "BRIGHT1": (1, 1),
        "BRIGHT2": (2, 0),
        "SHALLOW2": (2, 3),
        "SHALLOW4": (4, 1),
        "MEDIUM2": (2, 8),
        "MEDIUM8": (8, 2),
        "DEEP2": (2, 18),
        "DEEP8": (8, 12),
    },
    "NIRISS": {"NISRAPID": (1, 0), "NIS": (4, 0)},
    "FGS": {"FGSRAPID": (1, 0), "FGS": (4, 0)},
    # MIRI: one frame per group; SLOW's 8 samples per read are averaged on board (NSAMPLES)
    "MIRI": {"FASTR1": (1, 0), "SLOWR1": (1, 0), "FAST": (1, 0), "SLOW": (1, 0)},
}

#: The near-infrared detectors by ``DETECTOR`` name (the set every NIR table is keyed
#: by: SIAF full frames, default references). Read-only.
DETECTORS: Final[Mapping[str, Detector]] = MappingProxyType({d.name: d for d in _TABLE})

#: Full-frame FAST frame time (s) of the MIRI imager: 277504 clocks of 10 µs (jwst 3.0
#: ``emicorr.subarray_clocks["FULL_FAST"]``; JDox "Comparison of Old and New MIRI
#: Detector Readout Patterns", Table 1, rounds it to 2.775 s).
MIRI_FULL_FRAME_TIME: Final = 2.77504
#: Full-frame SLOW frame time (s): 2388992 clocks of 10 µs (jwst ``FULL_SLOW``; JDox: 23.890 s).
MIRI_SLOW_FRAME_TIME: Final = 23.88992

#: The MIRI imager. Nominal values: gain 5.5 e⁻/DN (the jwst GAIN references'
#: order, JDox "MIRI Detector Performance"), CDS read noise ~6.5 DN (~36 e⁻),
#: dark current ~0.2 e⁻/s, raw saturation ~60000 DN over a ~11000 DN zero level
#: (the MIRI pipeline has no superbias step; ``bias`` is the first read's level).
MIRIMAGE: Final = Detector(
    name="MIRIMAGE",
    instrument="MIRI",
    channel="",
    module="",
    gain=5.5,
    read_noise=6.5,
    dark_current=0.2,
    saturation=60000.0,
    bias=11000.0,
    amp_bias_offsets=(0.0, 40.0, -30.0, 60.0),
    nonlinearity=0.15,
    ipc_alpha=0.012,
    frame_time_full=MIRI_FULL_FRAME_TIME,
    fastaxis=1,
    slowaxis=2,
    ny=1024,
    nx=1032,
    refpix=4,
    namps=4,
    amp_width=1,
    refpix_rows=False,
    amp_layout="interleaved",
)

#: The MIRI detectors webbflow knows (the imager). Read-only.
MIRI_DETECTORS: Final[Mapping[str, Detector]] = MappingProxyType({MIRIMAGE.name: MIRIMAGE})

#: Every known detector, near-infrared and MIRI. Read-only.
ALL_DETECTORS: Final[Mapping[str, Detector]] = MappingProxyType({**DETECTORS, **MIRI_DETECTORS})


@dataclass(frozen=True)
class Subarray:
    """A readout window in the DMS frame: ``SUBARRAY`` name, ``SUBSTRT1/2``, ``SUBSIZE1/2`` (1-based)."""

    name: str
    xstart: int
    ystart: int
    xsize: int
    ysize: int
    frame_time: float


#: The MIRI imager subarrays. Windows from pysiaf (PRDOPSSOC-075, ``MIRIM_<name>``
#: apertures: ``sci_to_det(1, 1)`` and ``XSciSize``/``YSciSize``; MIRI's science
#: frame is its detector frame). FAST frame times, s: the subarray's ``frameclocks`` × 10 µs
#: from jwst 3.0's ``jwst.emicorr.emicorr.subarray_clocks`` (FULL 2.775, BRIGHTSKY 0.865,
#: SUB256 0.300, SUB128 0.119 s agree with JDox "MIRI Detector Subarrays").
MIRI_SUBARRAYS: Final[Mapping[str, Subarray]] = MappingProxyType(
    {
        s.name: s
        for s in (
            Subarray("FULL", 1, 1, 1032, 1024, MIRI_FULL_FRAME_TIME),
            Subarray("BRIGHTSKY", 457, 51, 512, 512, 0.86528),
            Subarray("SUB256", 413, 51, 256, 256, 0.29952),
            Subarray("SUB128", 1, 891, 136, 128, 0.11904),
            Subarray("SUB64", 1, 779, 72, 64, 0.08512),
            Subarray("MASK1065", 1, 21, 288, 224, 0.23968),
            Subarray("MASK1140", 1, 243, 288, 224, 0.23968),
            Subarray("MASK1550", 1, 463, 288, 224, 0.23968),
            Subarray("MASKLYOT", 1, 719, 320, 304, 0.32400),
            Subarray("SLITLESSPRISM", 1, 529, 72, 416, 0.15904),
        )
    }
)


def miri_frame_time(subarray: str, readpatt: str = "FASTR1") -> float:
    """MIRI imager frame time (s) of a ``SUBARRAY`` read with ``READPATT``.

    SLOW/SLOWR1 exist for the full array only.

    Raises
    ------
    UsageError
        For an unknown subarray, or SLOW on a subarray.
    """
    key = str(subarray).strip().upper()
    if key not in MIRI_SUBARRAYS:
        raise UsageError(f"unknown MIRI SUBARRAY {subarray!r}{suggest(key, MIRI_SUBARRAYS)}")
    if str(readpatt).strip().upper().startswith("SLOW"):
        if key != "FULL":
            raise UsageError(f"MIRI READPATT={readpatt} reads the full array only, not SUBARRAY={key}")
        return MIRI_SLOW_FRAME_TIME
    return MIRI_SUBARRAYS[key].frame_time


def get_detector(name: str) -> Detector:
    """The :class:`Detector` named ``name`` (``DETECTOR`` keyword, any case).

    Raises
    ------
    UsageError
        If ``name`` is not a known detector; the message suggests the closest name.
    """
    key = str(name).strip().upper()
    if key in ALL_DETECTORS:
        return ALL_DETECTORS[key]
    raise UsageError(
        f"unknown DETECTOR {name!r}{suggest(key, ALL_DETECTORS)} (known: {', '.join(ALL_DETECTORS)})"
    )


def frame_time(det: Detector, xsize: int, ysize: int) -> tuple[float, int]:
    """``(TFRAME s, NOUTPUTS)`` of a window: full frame, or one output at 10 µs a pixel.

    A subarray is read by one output in ``(n_fast + 12) × (n_slow + 2)`` pixel times
    of 10 µs (12 and 2 are the line and frame overheads); a window spanning the whole
    fast axis uses the four outputs. MIRI (FAST sampling): the tabulated frame time
    of the subarray of that size (:data:`MIRI_SUBARRAYS`), four outputs.
    """
    if det.instrument == "MIRI":
        for sub in MIRI_SUBARRAYS.values():
            if (sub.xsize, sub.ysize) == (xsize, ysize):
                return miri_frame_time(sub.name), det.namps
        raise UsageError(f"no MIRI subarray is {xsize}x{ysize} pixels (known: {', '.join(MIRI_SUBARRAYS)})")
    n_fast, n_slow = (xsize, ysize) if det.amp_axis == "x" else (ysize, xsize)
    if n_fast == det.nx and n_slow == det.ny:
        return det.frame_time_full, det.namps
    if n_fast == det.nx:
        return round((n_fast / det.namps + 12) * (n_slow + 1) * 1e-5, 5), det.namps
    return round((n_fast + 12) * (n_slow + 2) * 1e-5, 5), 1
