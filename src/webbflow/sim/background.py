"""Sky and telescope background: a smooth model spectrum, band-averaged, turned into e⁻/s/pixel.

The model surface brightness ``I_ν(λ)`` (MJy/sr) has three parts:

- **zodiacal scattered light**: sunlight scattered by interplanetary dust, shaped as a
  5800 K blackbody (``B_ν``); anchored at :data:`SCATTERED_MJYSR_2UM` at 2 µm for ``low``;
- **zodiacal thermal emission**: the same dust at ~265 K (``B_ν``); anchored at
  :data:`THERMAL_MJYSR_4P9UM` at 4.9 µm for ``low``, so it overtakes scattered light near
  3.5 µm and rises steeply beyond 4.5 µm;
- **telescope thermal emission**: a 45 K greybody of emissivity 0.1 (sunshield-side
  mirrors). Included for completeness: it is below 1e-9 MJy/sr short of 5 µm.

The ``low`` anchors follow the COBE/DIRBE zodiacal-light brightness towards the ecliptic
poles (~0.3 MJy/sr at 1.25 µm, ~0.15 at 2.2 µm, minimum ~0.1 near 3.5 µm, ~0.3 at 4.9 µm,
Kelsall et al. 1998); ``medium`` and ``high`` scale both zodiacal parts by the ratios of the
JWST ETC's background levels (1.77 and 3.31 × ``low``). The telescope part does not scale.
Real backgrounds depend on the pointing and date (the ``jwst_backgrounds`` model); this is
a nominal, position-independent stand-in good to a factor ~1.5.

**MIRI** (5–27 µm) uses the same spectrum: the zodiacal thermal emission peaks near 12 µm
(~13 MJy/sr ``low``), the 45 K telescope greybody overtakes it near 18 µm and dominates F2100W and
F2550W (~100 and ~860 MJy/sr). Through the nominal MIRI bands of ``filters.ecsv`` (0.1108″ pixels)
the ``low`` rates are, e⁻/s/pixel: F560W 3, F770W 30, F1000W 50, F1130W 20, F1280W 79, F1500W 99,
F1800W 129, F2100W 640, F2550W 1680 — the order of the JWST ETC's MIRI imaging backgrounds (tens of
e⁻/s at 7.7 µm, thousands at 25.5 µm; Glasse et al. 2015, PASP 127, 686; Rigby et al. 2023, PASP
135, 048002, thermal self-emission dominating the longest bands). ``medium``/``high`` scale only
the zodiacal part, so they raise F770W by 1.8×/3.3× but F2550W by only a few per cent: the
telescope's emission does not depend on the pointing. Good to a factor ~2 beyond 15 µm.

The band average is photon-weighted over the filter's top-hat (:mod:`webbflow.sim.fluxcal`),
``<I_ν> = ∫ I_ν dλ/λ / ∫ dλ/λ``, so the rate is exactly that of the model spectrum:
``rate = 10^(0.4 ZP_AB) · <I_ν> Ω / 3631 Jy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import numpy as np

from webbflow.errors import UsageError, suggest
from webbflow.sim.fluxcal import AB_JY, C_UM_PER_S, H_ERG_S, K_ERG_PER_K, FilterInfo

#: Zodiacal-light scale factor of each named level (``low`` = the anchors below).
LEVELS: Final[Mapping[str, float]] = MappingProxyType({"low": 1.0, "medium": 1.77, "high": 3.31})
#: Scattered zodiacal light at 2 µm, ``low`` level, MJy/sr.
SCATTERED_MJYSR_2UM: Final = 0.16
#: Thermal zodiacal emission at 4.9 µm, ``low`` level, MJy/sr.
THERMAL_MJYSR_4P9UM: Final = 0.25
#: Temperatures, K.
SUN_TEMPERATURE: Final = 5800.0
DUST_TEMPERATURE: Final = 265.0
TELESCOPE_TEMPERATURE: Final = 45.0
#: Effective emissivity of the telescope's greybody.
TELESCOPE_EMISSIVITY: Final = 0.1

_BNU_TO_MJYSR: Final = 1e23 / 1e6  # erg s⁻¹ cm⁻² Hz⁻¹ sr⁻¹ → MJy/sr


def _planck_nu(wave_um: np.ndarray, temperature: float) -> np.ndarray:
    """Planck ``B_ν``, MJy/sr, at ``wave_um`` (µm)."""
    nu = C_UM_PER_S / wave_um
    x = H_ERG_S * nu / (K_ERG_PER_K * temperature)
    with np.errstate(over="ignore"):
        return 2.0 * H_ERG_S * nu**3 / (C_UM_PER_S * 1e-4) ** 2 / np.expm1(x) * _BNU_TO_MJYSR


def _scale(level: str) -> float:
    key = str(level).strip().lower()
    if key not in LEVELS:
        raise UsageError(
            f"unknown background level {level!r}{suggest(key, LEVELS)} "
            f"(expected {', '.join(LEVELS)} or a number in MJy/sr)"
        )
    return LEVELS[key]


def sky_spectrum(wave_um: np.ndarray, level: str = "low") -> np.ndarray:
    """The model background surface brightness.

    Parameters
    ----------
    wave_um : array_like, any shape, float64, µm
    level
        ``low``, ``medium`` or ``high``.

    Returns
    -------
    ndarray, shape of ``wave_um``, float64, MJy/sr
    """
    wave = np.asarray(wave_um, np.float64)
    zodi = _scale(level)
    anchor = np.array([2.0, 4.9])
    scattered = (
        SCATTERED_MJYSR_2UM * _planck_nu(wave, SUN_TEMPERATURE) / _planck_nu(anchor[0], SUN_TEMPERATURE)
    )
    thermal = (
        THERMAL_MJYSR_4P9UM * _planck_nu(wave, DUST_TEMPERATURE) / _planck_nu(anchor[1], DUST_TEMPERATURE)
    )
    telescope = TELESCOPE_EMISSIVITY * _planck_nu(wave, TELESCOPE_TEMPERATURE)
    return np.asarray(zodi * (scattered + thermal) + telescope, np.float64)


def band_background(level: str | float, info: FilterInfo) -> float:
    """The photon-weighted mean background over the band of ``info``, MJy/sr.

    ``level``: ``low``/``medium``/``high`` (model spectrum), ``none`` (0), or a number (MJy/sr,
    flat in ``f_ν``, returned as is).
    """
    if isinstance(level, bool):
        raise UsageError(f"background level {level!r}: expected low, medium, high or a number in MJy/sr")
    if isinstance(level, int | float | np.floating | np.integer):
        value = float(level)
        if not np.isfinite(value) or value < 0:
            raise UsageError(f"background level {value} MJy/sr: expected a finite number >= 0")
        return value
    if str(level).strip().lower() == "none":
        return 0.0
    lo, hi = info.band_um
    wave = np.linspace(lo, hi, 1025)
    spectrum = sky_spectrum(wave, str(level))
    return float(np.trapezoid(spectrum / wave, wave) / np.trapezoid(1.0 / wave, wave))


def background_rate(level: str | float, info: FilterInfo, pixel_area_sr: float) -> float:
    """Background electron rate of one pixel.

    Parameters
    ----------
    level
        ``low``, ``medium``, ``high`` (zodiacal + telescope model through this band), ``none``,
        or a number: the surface brightness in MJy/sr.
    info
        The band (:func:`webbflow.sim.fluxcal.filter_info`).
    pixel_area_sr
        Solid angle of the pixel, sr (e.g. ``Geometry.nominal_pixel_area_sr``).

    Returns
    -------
    float, e⁻/s/pixel
    """
    area = float(pixel_area_sr)
    if not (np.isfinite(area) and area > 0):
        raise UsageError(f"pixel area {pixel_area_sr!r} sr: expected a positive number")
    mjysr = band_background(level, info)
    return float(10 ** (0.4 * info.zeropoint_ab) * mjysr * 1e6 * area / AB_JY)
