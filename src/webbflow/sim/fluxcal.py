"""Photometric calibration from first principles: bands, zero points and magnitude systems.

Every band is modelled as a top-hat of height ``T`` (the mean system throughput:
telescope, instrument optics, filter and detector QE) between ``λ1`` and ``λ2``,
placed so that its pivot wavelength and width equal the published values listed
in ``data/filters.ecsv``. Photon counting over the band gives the electron rate
of a source of spectral flux density ``f_ν`` (one electron per photon):

.. math::

    N = \\frac{A\\,T}{h} \\int_{λ_1}^{λ_2} f_ν(λ)\\,\\frac{dλ}{λ}
      = \\frac{A\\,T}{h\\,c} \\int_{λ_1}^{λ_2} f_λ(λ)\\,λ\\,dλ ,

with ``A = 25.4 m²`` the collecting area. Hence

- **AB** (``f_ν = 3631 Jy · 10^(-0.4 m)``): ``N = A T f_ν ln(λ2/λ1) / h``; the zero point
  :attr:`FilterInfo.zeropoint_ab` is the AB magnitude giving 1 e⁻/s.
- **ST** (``f_λ = 10^(-0.4 (m + 21.10))`` erg s⁻¹ cm⁻² Å⁻¹): a flat-``f_λ`` source gives the
  same count rate as a flat-``f_ν`` source with ``f_ν = f_λ λp²/c`` exactly, because that is
  what the pivot wavelength ``λp`` means; so ``AB − ST = −2.5 log10(f_λ0 λp² / (c f_ν0))``.
- **Vega**: Vega is approximated by a blackbody scaled to its measured flux at 5556 Å
  (3.44e-9 erg s⁻¹ cm⁻² Å⁻¹, Hayes 1985) and integrated over the band; ``AB − Vega`` is the
  AB magnitude of that spectrum. The blackbody has Vega's 0.55–5 µm *colour* temperature,
  11 500 K, not its effective temperature (9550 K): Vega's near-infrared continuum is
  fainter relative to V than a 9550 K Planck curve, which would give ``AB − Vega``
  0.25–0.3 mag too small at 2–4.4 µm. With 11 500 K the 2MASS J/Ks values (0.91, 1.85) are
  matched to 0.03 mag; the hydrogen lines and jumps are ignored, so bands below 1 µm are off
  by up to ~0.1 mag.

``PHOTMJSR`` follows: a pixel of solid angle ``Ω`` with surface brightness ``I_ν``
receives the count rate of a point source of ``f_ν = I_ν Ω``.

The numbers are nominal, not calibrated: good to ~10 % (filter curves are not
top-hats, throughputs vary with module and detector), enough for realistic
simulations but not a substitute for the CRDS ``photom`` references.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Final

import numpy as np
from astropy.table import Table
from scipy.optimize import brentq

from webbflow.errors import UsageError, suggest

#: JWST collecting area, cm².
AREA_CM2: Final = 25.4e4
#: Planck constant, erg s.
H_ERG_S: Final = 6.62607015e-27
#: Boltzmann constant, erg/K.
K_ERG_PER_K: Final = 1.380649e-16
#: Speed of light, µm/s.
C_UM_PER_S: Final = 2.99792458e14
#: AB reference flux density, Jy.
AB_JY: Final = 3631.0
#: One jansky in erg s⁻¹ cm⁻² Hz⁻¹.
JY_CGS: Final = 1e-23
#: ST reference flux density, erg s⁻¹ cm⁻² Å⁻¹ (``m_ST = −2.5 log10 f_λ − 21.10``).
ST_FLAM: Final = 10 ** (-0.4 * 21.10)
#: Vega model: blackbody (colour) temperature, K; wavelength (µm) and flux (erg s⁻¹ cm⁻² Å⁻¹) of its anchor.
VEGA_TEMPERATURE: Final = 11500.0
VEGA_ANCHOR_UM: Final = 0.5556
VEGA_ANCHOR_FLAM: Final = 3.44e-9
#: Magnitude systems :func:`countrate` knows.
MAG_SYSTEMS: Final = ("abmag", "stmag", "vegamag")

_ARCSEC2_SR: Final = (math.pi / 180.0 / 3600.0) ** 2
#: Nominal pixel scales (x, y), arcsec, from the SIAF full-frame apertures (PRD 0.29).
PIXEL_SCALES: Final[Mapping[str, tuple[float, float]]] = MappingProxyType(
    {
        "NIRCAM_SHORT": (0.0312, 0.0313),
        "NIRCAM_LONG": (0.0628, 0.0631),
        "NIRISS": (0.0653, 0.0658),
        "FGS": (0.0681, 0.0698),
        "MIRI": (0.1108, 0.1108),
    }
)
#: NIRCam bands longer than this (µm) are seen by the long-wavelength channel.
NIRCAM_LW_CUTON_UM: Final = 2.4

# Wheel elements that do not define a band (the other wheel's filter does).
_NIRCAM_PUPILS: Final = frozenset(
    {"CLEAR", "CLEARP", "GRISMR", "GRISMC", "WLP4", "WLP8", "WLM8", "MASKRND", "MASKBAR",
     "MASKIPR", "FLAT", "PINHOLES", "GDHS0", "GDHS60"}
)  # fmt: skip
_NIRISS_PASS: Final = frozenset({"CLEAR", "CLEARP", "GR150R", "GR150C", "GR700XD", "NRM"})
_FGS_NAMES: Final = frozenset({"CLEAR", "GUIDER", "GUIDER1", "GUIDER2", "FGS"})
_NONE_NAMES: Final = frozenset({"", "NONE", "NA", "N/A"})


@dataclass(frozen=True)
class FilterInfo:
    """The nominal photometric calibration of one instrument band.

    Attributes
    ----------
    instrument
        ``NIRCAM``, ``NIRISS``, ``FGS`` or ``MIRI``.
    filter, pupil
        The wheel elements as given (upper case; ``None`` when absent).
    element
        The element that defines the band (``F162M`` for ``F150W2`` + ``F162M``; ``GUIDER`` for FGS).
    pivot_um, bandwidth_um
        Pivot wavelength and effective width, µm (published values).
    throughput
        Nominal mean system throughput over the band (telescope, optics, filter, detector QE).
    band_um
        ``(λ1, λ2)``, µm: edges of the top-hat with this pivot and width.
    zeropoint_ab
        AB magnitude of a source giving 1 e⁻/s.
    photmjsr
        Surface brightness, MJy/sr, giving 1 e⁻/s in a pixel of :attr:`pixel_area_sr`.
    pixel_area_sr
        Nominal pixel solid angle, sr.
    """

    instrument: str
    filter: str | None
    pupil: str | None
    element: str
    pivot_um: float
    bandwidth_um: float
    throughput: float
    band_um: tuple[float, float]
    zeropoint_ab: float
    photmjsr: float
    pixel_area_sr: float


@functools.cache
def _table() -> Mapping[tuple[str, str], tuple[str, float, float, float]]:
    """``{(instrument, element): (wheel, pivot_um, bandwidth_um, throughput)}`` from filters.ecsv."""
    path = resources.files("webbflow.sim") / "data" / "filters.ecsv"
    with resources.as_file(path) as file:
        table = Table.read(file, format="ascii.ecsv")
    return MappingProxyType(
        {
            (str(r["instrument"]), str(r["element"])): (
                str(r["wheel"]),
                float(r["pivot_um"]),
                float(r["bandwidth_um"]),
                float(r["throughput"]),
            )
            for r in table
        }
    )


def known_elements(instrument: str) -> tuple[str, ...]:
    """The band-defining elements of ``instrument`` listed in ``filters.ecsv``."""
    inst = _instrument(instrument)
    return tuple(e for (i, e) in _table() if i == inst)


def band_edges(pivot_um: float, bandwidth_um: float) -> tuple[float, float]:
    """Edges ``(λ1, λ2)``, µm, of the top-hat of width ``bandwidth_um`` whose pivot is ``pivot_um``.

    The pivot of a top-hat is ``sqrt((λ2² − λ1²) / (2 ln(λ2/λ1)))``; it increases with ``λ1``
    from 0 (``λ1 → 0``) past ``pivot_um`` (``λ1 = pivot_um``), so the root is bracketed.
    """
    p, w = float(pivot_um), float(bandwidth_um)
    if not (p > 0 and w > 0):
        raise UsageError(f"pivot {p} µm and width {w} µm must be positive")

    def excess(lo: float) -> float:
        hi = lo + w
        return (hi * hi - lo * lo) / (2.0 * math.log(hi / lo)) - p * p

    lo = float(brentq(excess, p * 1e-6, p, xtol=1e-12, rtol=1e-14))
    return lo, lo + w


def _instrument(instrument: str) -> str:
    inst = str(instrument).strip().upper()
    choices = ("NIRCAM", "NIRISS", "FGS", "MIRI")
    if inst not in choices:
        raise UsageError(
            f"unknown instrument {instrument!r}{suggest(inst, choices)} (known: {', '.join(choices)})"
        )
    return inst


def _name(value: str | None) -> str | None:
    if value is None:
        return None
    word = str(value).strip().upper()
    return None if word in _NONE_NAMES else word


def _element(inst: str, filter: str | None, pupil: str | None) -> str:
    """The band-defining element of a filter/pupil pair, as JWST users write them."""
    table = _table()
    wheel = {e: w for (i, e), (w, *_) in table.items() if i == inst}
    where = f"{inst} FILTER={filter} PUPIL={pupil}"
    if inst == "FGS":
        for value in (filter, pupil):
            if value is not None and value not in _FGS_NAMES:
                raise UsageError(f"{where}: FGS has no filters (expected no FILTER/PUPIL, got {value!r})")
        return "GUIDER"
    if inst == "MIRI":
        if filter in wheel and pupil in (None, "CLEAR", "CLEARP"):
            return filter
        raise UsageError(f"{where}: unknown MIRI imager filter {filter!r}{suggest(filter or '', wheel)}")
    if inst == "NIRCAM":
        if pupil is not None and wheel.get(pupil) == "pupil":
            return pupil  # a pupil-wheel filter with its blocking filter in the filter wheel
        if pupil is not None and pupil not in _NIRCAM_PUPILS:
            raise UsageError(
                f"{where}: unknown NIRCam pupil {pupil!r}{suggest(pupil, [*_NIRCAM_PUPILS, *wheel])}"
            )
        if filter in wheel:
            return filter
        raise UsageError(f"{where}: unknown NIRCam filter {filter!r}{suggest(filter or '', wheel)}")
    # NIRISS: the band is whichever wheel holds a bandpass filter
    bands = [e for e in (pupil, filter) if e in wheel]
    unknown = [e for e in (pupil, filter) if e is not None and e not in wheel and e not in _NIRISS_PASS]
    if unknown:
        raise UsageError(
            f"{where}: unknown NIRISS element {unknown[0]!r}{suggest(unknown[0], [*wheel, *_NIRISS_PASS])}"
        )
    if len(bands) != 1:
        what = "two bandpass filters" if bands else "no bandpass filter"
        raise UsageError(f"{where}: {what} (expected one of {', '.join(wheel)})")
    return bands[0]


def _pixel_area_sr(inst: str, pivot_um: float) -> float:
    key = inst
    if inst == "NIRCAM":
        key = "NIRCAM_LONG" if pivot_um > NIRCAM_LW_CUTON_UM else "NIRCAM_SHORT"
    sx, sy = PIXEL_SCALES[key]
    return sx * sy * _ARCSEC2_SR


def ab_rate(throughput: float, band_um: tuple[float, float]) -> float:
    """Electron rate, e⁻/s, of an AB = 0 source (3631 Jy, flat in ``f_ν``) through a top-hat band."""
    lo, hi = band_um
    return AREA_CM2 * throughput * AB_JY * JY_CGS * math.log(hi / lo) / H_ERG_S


@functools.cache
def filter_info(instrument: str, filter: str | None, pupil: str | None = None) -> FilterInfo:
    """The nominal calibration of the band selected by ``filter`` and ``pupil``.

    Parameters
    ----------
    instrument
        ``NIRCAM``, ``NIRISS`` or ``FGS`` (any case).
    filter, pupil
        ``FILTER``/``PUPIL`` keyword values. NIRCam: a pupil-wheel filter (``F162M``,
        ``F164N``, ``F323N``, ``F405N``, ``F466N``, ``F470N``) defines the band, else the filter
        does (``CLEAR``, grisms, weak lenses and coronagraph stops pass it unchanged; their
        own transmission is not modelled). NIRISS: whichever wheel holds a bandpass filter
        (``CLEAR`` + ``F150W``, ``F277W`` + ``CLEARP``, ``GR150R`` + ``F200W``). FGS: no filter.
        ``None``, ``""``, ``NONE`` and ``N/A`` mean absent.

    Raises
    ------
    UsageError
        Unknown instrument or element, or no (or two) band-defining filters.
    """
    inst = _instrument(instrument)
    fil, pup = _name(filter), _name(pupil)
    element = _element(inst, fil, pup)
    _, pivot, width, throughput = _table()[(inst, element)]
    band = band_edges(pivot, width)
    zeropoint = 2.5 * math.log10(ab_rate(throughput, band))
    area = _pixel_area_sr(inst, pivot)
    photmjsr = AB_JY * 1e-6 * 10 ** (-0.4 * zeropoint) / area
    return FilterInfo(inst, fil, pup, element, pivot, width, throughput, band, zeropoint, photmjsr, area)


def ab_minus_st(info: FilterInfo) -> float:
    """``m_AB − m_ST`` of any source through this band (exact for the top-hat model), mag."""
    fnu_equiv = ST_FLAM * 1e4 * info.pivot_um**2 / C_UM_PER_S  # erg s⁻¹ cm⁻² Hz⁻¹ (Å⁻¹ → µm⁻¹: × 1e4)
    return -2.5 * math.log10(fnu_equiv / (AB_JY * JY_CGS))


def vega_flam(wave_um: np.ndarray) -> np.ndarray:
    """The Vega model: an 11 500 K blackbody through Vega's 5556 Å flux, erg s⁻¹ cm⁻² Å⁻¹.

    Parameters
    ----------
    wave_um : ndarray, float64, µm
    """
    wave = np.asarray(wave_um, np.float64)

    def planck_shape(w: np.ndarray | float) -> np.ndarray:
        x = H_ERG_S * C_UM_PER_S / (np.asarray(w) * K_ERG_PER_K * VEGA_TEMPERATURE)
        return np.asarray(1.0 / (np.asarray(w) ** 5 * np.expm1(x)))

    return VEGA_ANCHOR_FLAM * planck_shape(wave) / planck_shape(VEGA_ANCHOR_UM)


@functools.cache
def _vega_ab(band_um: tuple[float, float]) -> float:
    lo, hi = band_um
    wave = np.linspace(lo, hi, 2049)
    # photon-weighted mean f_λ over the band, against that of a flat-f_ν source (AB = 0)
    vega = np.trapezoid(vega_flam(wave) * wave, wave)  # erg s⁻¹ cm⁻² Å⁻¹ µm²
    ab = np.trapezoid(AB_JY * JY_CGS * C_UM_PER_S / wave**2 * 1e-4 * wave, wave)
    return float(-2.5 * np.log10(vega / ab))


def ab_minus_vega(info: FilterInfo) -> float:
    """``m_AB − m_Vega`` through this band: the AB magnitude of the Vega model, mag."""
    return _vega_ab(info.band_um)


def zeropoint(system: str, info: FilterInfo) -> float:
    """The magnitude, in ``system`` (``abmag``, ``stmag``, ``vegamag``), of a 1 e⁻/s source."""
    key = str(system).strip().lower()
    if key == "abmag":
        return info.zeropoint_ab
    if key == "stmag":
        return info.zeropoint_ab - ab_minus_st(info)
    if key == "vegamag":
        return info.zeropoint_ab - ab_minus_vega(info)
    raise UsageError(
        f"unknown magnitude system {system!r}{suggest(key, MAG_SYSTEMS)} (expected {', '.join(MAG_SYSTEMS)})"
    )


def countrate(mag: np.ndarray | float, system: str, info: FilterInfo) -> np.ndarray:
    """Electron rates of sources of magnitude ``mag`` in ``system`` through the band of ``info``.

    Parameters
    ----------
    mag : array_like, any shape, mag
    system
        ``abmag``, ``stmag`` or ``vegamag`` (any case).
    info
        From :func:`filter_info`.

    Returns
    -------
    ndarray, same shape as ``mag``, float64, e⁻/s

    Examples
    --------
    >>> info = filter_info("NIRCAM", "F200W", "CLEAR")
    >>> float(countrate(info.zeropoint_ab, "abmag", info))
    1.0
    """
    zp = zeropoint(system, info)
    return np.asarray(10.0 ** (-0.4 * (np.asarray(mag, np.float64) - zp)), np.float64)


def countrate_to_mag(rate: np.ndarray | float, system: str, info: FilterInfo) -> np.ndarray:
    """Magnitudes in ``system`` of sources giving ``rate`` e⁻/s (inverse of :func:`countrate`).

    Returns
    -------
    ndarray, same shape as ``rate``, float64, mag; ``inf`` for 0 and NaN for negative rates.
    """
    zp = zeropoint(system, info)
    rate = np.asarray(rate, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(zp - 2.5 * np.log10(rate), np.float64)
