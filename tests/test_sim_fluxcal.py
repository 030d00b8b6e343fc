"""Flux calibration (webbflow.sim.fluxcal) and the sky background model (webbflow.sim.background).

Expectations come from physics (photon counting, the pivot-wavelength identity) and from
published numbers: the JWST NIRCam zero points Mirage ships (``NIRCam_zeropoints.list``, ADU/s,
converted to e⁻/s with its mean gains) and 2MASS AB−Vega offsets (Blanton & Roweis 2007).
The published comparisons are loose (nominal top-hat bands, not filter curves).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from webbflow.errors import UsageError
from webbflow.sim import background as bkg
from webbflow.sim import fluxcal as fc

H, C_UM, AREA = 6.62607015e-27, 2.99792458e14, 25.4e4


def _info(instrument: str, filter: str | None, pupil: str | None = None) -> fc.FilterInfo:
    return fc.filter_info(instrument, filter, pupil)


# ------------------------------------------------------------------ band resolution


@pytest.mark.parametrize(
    ("args", "element"),
    [
        (("NIRCAM", "F200W", "CLEAR"), "F200W"),
        (("nircam", "f200w", None), "F200W"),
        (("NIRCAM", "F444W", "GRISMR"), "F444W"),
        (("NIRCAM", "F150W2", "F162M"), "F162M"),
        (("NIRCAM", "F150W2", "F164N"), "F164N"),
        (("NIRCAM", "F322W2", "F323N"), "F323N"),
        (("NIRCAM", "F444W", "F405N"), "F405N"),
        (("NIRCAM", "F444W", "F466N"), "F466N"),
        (("NIRCAM", "F444W", "F470N"), "F470N"),
        (("NIRISS", "CLEAR", "F090W"), "F090W"),
        (("NIRISS", "F277W", "CLEARP"), "F277W"),
        (("NIRISS", "GR150R", "F200W"), "F200W"),
        (("NIRISS", "F480M", "NRM"), "F480M"),
        (("FGS", None, None), "GUIDER"),
        (("FGS", "N/A", ""), "GUIDER"),
    ],
)
def test_band_defining_element(args: tuple[str, str | None, str | None], element: str) -> None:
    assert _info(*args).element == element


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("NIRSPEC", "F110W", None), "unknown instrument"),
        (("MIRI", "F771W", None), "unknown MIRI imager filter 'F771W'; did you mean 'F770W'"),
        (("NIRCAM", "F201W", "CLEAR"), "did you mean 'F200W'"),
        (("NIRCAM", "F200W", "CLAER"), "unknown NIRCam pupil"),
        (("NIRISS", "F277W", "F200W"), "two bandpass filters"),
        (("NIRISS", "CLEAR", "CLEARP"), "no bandpass filter"),
        (("NIRISS", "CLEAR", "F070W"), "unknown NIRISS element"),
        (("FGS", "F200W", None), "FGS has no filters"),
    ],
)
def test_bad_bands_are_usage_errors(args: tuple[str, str | None, str | None], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        _info(*args)


def test_every_listed_band_loads_with_sane_numbers() -> None:
    for inst in ("NIRCAM", "NIRISS", "FGS"):
        for element in fc.known_elements(inst):
            pupil = "CLEAR" if inst == "NIRISS" else None
            filt = None if inst == "FGS" else element
            if inst == "NIRISS" and element in ("F090W", "F115W", "F140M", "F150W", "F158M", "F200W"):
                filt, pupil = "CLEAR", element
            elif inst == "NIRISS":
                pupil = "CLEARP"
            info = _info(inst, filt, pupil)
            assert 0.1 < info.throughput < 0.7
            assert 22.0 < info.zeropoint_ab < 31.0, (inst, element)
            lo, hi = info.band_um
            assert lo < info.pivot_um < hi and hi - lo == pytest.approx(info.bandwidth_um)


def test_nircam_covers_all_imaging_filters() -> None:
    names = set(fc.known_elements("NIRCAM"))
    assert {"F070W", "F150W2", "F322W2", "F480M", "F164N", "F212N", "F405N", "F470N"} <= names
    assert len(names) == 29


# ------------------------------------------------------------------ zero points


@pytest.mark.parametrize(("pivot", "width"), [(1.99, 0.461), (1.644, 0.02), (3.247, 1.339), (2.55, 4.23)])
def test_top_hat_has_the_requested_pivot(pivot: float, width: float) -> None:
    lo, hi = fc.band_edges(pivot, width)
    wave = np.linspace(lo, hi, 200001)
    # pivot² = ∫ T λ dλ / ∫ T/λ dλ, integrated independently of the closed form
    measured = math.sqrt(np.trapezoid(wave, wave) / np.trapezoid(1 / wave, wave))
    assert measured == pytest.approx(pivot, rel=1e-6)
    assert hi - lo == pytest.approx(width, rel=1e-12)


def test_f200w_zero_point_in_expected_range() -> None:
    # loose: the NIRCam F200W AB zero point for 1 e⁻/s is ~28 (JDox ZP tables, Mirage)
    assert 27.5 < _info("NIRCAM", "F200W", "CLEAR").zeropoint_ab < 28.5


def test_zero_point_is_photon_counting() -> None:
    info = _info("NIRCAM", "F200W", "CLEAR")
    lo, hi = info.band_um
    wave = np.linspace(lo, hi, 20001)
    fnu = 3631e-23 * 10 ** (-0.4 * info.zeropoint_ab)  # erg/s/cm²/Hz
    photons = AREA * info.throughput * np.trapezoid(fnu / (H * wave), wave)  # ∫ f_ν/(hλ) dλ
    assert photons == pytest.approx(1.0, rel=1e-6)


# Mirage's NIRCam_zeropoints.list (ABMAG for 1 ADU/s, detector NRCA1 / NRCA5) and its mean gains.
MIRAGE_NIRCAM_AB_ADU = {
    ("F070W", "CLEAR"): (26.3906, 2.05),
    ("F200W", "CLEAR"): (27.3107, 2.05),
    ("F150W2", "F162M"): (26.3202, 2.05),
    ("F444W", "CLEAR"): (27.5090, 1.82),
    ("F444W", "F405N"): (23.8666, 1.82),
    ("F322W2", "CLEAR"): (28.1996, 1.82),
}


@pytest.mark.parametrize(("band", "published"), MIRAGE_NIRCAM_AB_ADU.items())
def test_nircam_zero_points_match_published_loosely(
    band: tuple[str, str], published: tuple[float, float]
) -> None:
    zp_adu, gain = published
    zp_electrons = zp_adu + 2.5 * math.log10(gain)
    assert _info("NIRCAM", *band).zeropoint_ab == pytest.approx(zp_electrons, abs=0.3)


# ------------------------------------------------------------------ magnitude systems


@pytest.mark.parametrize(
    "band", [("F070W", "CLEAR"), ("F200W", "CLEAR"), ("F150W2", "F164N"), ("F444W", "CLEAR")]
)
def test_st_and_ab_agree_at_the_pivot(band: tuple[str, str]) -> None:
    info = _info("NIRCAM", *band)
    lo, hi = info.band_um
    wave = np.linspace(lo, hi, 20001)
    m_st = 21.0
    flam_per_um = 10 ** (-0.4 * (m_st + 21.10)) * 1e4  # erg/s/cm²/µm, flat in f_λ
    photons = AREA * info.throughput * np.trapezoid(flam_per_um * wave / (H * C_UM), wave)
    assert float(fc.countrate(m_st, "stmag", info)) == pytest.approx(photons, rel=1e-6)
    # the same source in AB: f_ν = f_λ λp² / c
    fnu = flam_per_um * info.pivot_um**2 / C_UM
    m_ab = -2.5 * math.log10(fnu / 3631e-23)
    assert m_ab - m_st == pytest.approx(fc.ab_minus_st(info), abs=1e-9)
    assert float(fc.countrate(m_ab, "abmag", info)) == pytest.approx(photons, rel=1e-6)


@pytest.mark.parametrize(
    ("band", "published"), [((1.235, 0.162), 0.91), ((1.662, 0.251), 1.39), ((2.159, 0.262), 1.85)]
)
def test_vega_model_reproduces_2mass_ab_offsets(band: tuple[float, float], published: float) -> None:
    # 2MASS J, H, Ks as top-hats (centre, width); AB − Vega from Blanton & Roweis (2007)
    centre, width = band
    wave = np.linspace(centre - width / 2, centre + width / 2, 4001)
    vega = np.trapezoid(fc.vega_flam(wave) * wave, wave)
    ab = np.trapezoid(3631e-23 * C_UM / wave**2 * 1e-4 * wave, wave)
    assert -2.5 * math.log10(vega / ab) == pytest.approx(published, abs=0.05)


# VEGAMAG − ABMAG of Mirage's NIRCam table (NRCA1 / NRCA5)
@pytest.mark.parametrize(
    ("band", "published"),
    [
        (("F090W", "CLEAR"), 0.487),
        (("F200W", "CLEAR"), 1.690),
        (("F356W", "CLEAR"), 2.809),
        (("F444W", "CLEAR"), 3.229),
    ],
)
def test_ab_minus_vega_matches_published_loosely(band: tuple[str, str], published: float) -> None:
    assert fc.ab_minus_vega(_info("NIRCAM", *band)) == pytest.approx(published, abs=0.1)


@pytest.mark.parametrize("system", fc.MAG_SYSTEMS)
def test_magnitude_count_rate_round_trip(system: str) -> None:
    info = _info("NIRISS", "CLEAR", "F150W")
    mags = np.array([[12.0, 18.5], [25.0, 31.25]])
    rates = fc.countrate(mags, system, info)
    assert rates.shape == mags.shape and rates.dtype == np.float64
    np.testing.assert_allclose(fc.countrate_to_mag(rates, system, info), mags, rtol=0, atol=1e-12)
    # 2.5 mag brighter is 10× the rate
    np.testing.assert_allclose(fc.countrate(mags - 2.5, system, info) / rates, 10.0, rtol=1e-12)


def test_systems_differ_by_their_offsets() -> None:
    info = _info("NIRCAM", "F444W", "CLEAR")
    m = np.array([20.0, 22.0])
    ab = fc.countrate(m, "abmag", info)
    # a source of Vega (ST) magnitude m has AB magnitude m + (AB − Vega) (m + (AB − ST))
    np.testing.assert_allclose(fc.countrate(m, "VEGAMAG", info), ab * 10 ** (-0.4 * fc.ab_minus_vega(info)))
    np.testing.assert_allclose(fc.countrate(m, "stmag", info), ab * 10 ** (-0.4 * fc.ab_minus_st(info)))


def test_unknown_system_lists_choices() -> None:
    info = _info("NIRCAM", "F200W", "CLEAR")
    with pytest.raises(UsageError, match=r"'jansky'.*abmag, stmag, vegamag"):
        fc.countrate(20.0, "jansky", info)
    with pytest.raises(UsageError, match="did you mean 'abmag'"):
        fc.countrate_to_mag(1.0, "abmags", info)


def test_count_rate_to_mag_edge_values() -> None:
    info = _info("NIRCAM", "F200W", "CLEAR")
    out = fc.countrate_to_mag(np.array([0.0, -1.0]), "abmag", info)
    assert np.isposinf(out[0]) and np.isnan(out[1])


def test_photmjsr_gives_one_electron_per_pixel() -> None:
    for args in (("NIRCAM", "F200W", "CLEAR"), ("NIRCAM", "F444W", "CLEAR"), ("NIRISS", "CLEAR", "F200W")):
        info = _info(*args)
        # a pixel of PHOTMJSR MJy/sr holds a point source of f_ν = I_ν Ω
        m = -2.5 * math.log10(info.photmjsr * 1e6 * info.pixel_area_sr / 3631)
        assert float(fc.countrate(m, "abmag", info)) == pytest.approx(1.0, rel=1e-12)
    # JDox: a 1 MJy/sr pixel of 2.29e-14 sr is AB 28.0 (ZP_AB = -6.10 - 2.5 log10 PIXAR_SR)
    info = _info("NIRCAM", "F200W", "CLEAR")
    assert -6.10 - 2.5 * math.log10(info.pixel_area_sr) == pytest.approx(28.0, abs=0.02)


# ------------------------------------------------------------------ background


def test_background_spectrum_shape() -> None:
    wave = np.linspace(0.7, 5.0, 432)
    sky = bkg.sky_spectrum(wave, "low")
    assert 3.0 < wave[np.argmin(sky)] < 4.0  # scattered light fades, dust emission takes over
    assert 0.1 < float(bkg.sky_spectrum(2.0, "low")) < 0.5  # a few tenths of MJy/sr at 2 µm
    assert float(bkg.sky_spectrum(5.0, "low")) > 3 * float(bkg.sky_spectrum(3.5, "low"))


def test_background_levels_are_ordered_and_numbers_pass_through() -> None:
    info = _info("NIRCAM", "F444W", "CLEAR")
    area = info.pixel_area_sr
    low, med, high = (bkg.background_rate(level, info, area) for level in ("low", "Medium", "HIGH"))
    assert 0 < low < med < high
    assert bkg.background_rate("none", info, area) == 0.0
    # a number is MJy/sr: 1/PHOTMJSR e⁻/s per MJy/sr at the nominal pixel area, ∝ area
    assert bkg.background_rate(0.5, info, area) == pytest.approx(0.5 / info.photmjsr, rel=1e-12)
    assert bkg.background_rate(0.5, info, 2 * area) == pytest.approx(1.0 / info.photmjsr, rel=1e-12)


def test_band_background_is_photon_weighted_mean() -> None:
    info = _info("NIRCAM", "F322W2", "CLEAR")
    lo, hi = info.band_um
    wave = np.geomspace(lo, hi, 50001)
    sky = bkg.sky_spectrum(wave, "medium")
    expected = np.trapezoid(sky / wave, wave) / np.log(hi / lo)
    assert bkg.band_background("medium", info) == pytest.approx(expected, rel=1e-5)


def test_thermal_rise_in_long_wavelength_filters() -> None:
    mean = {f: bkg.band_background("low", _info("NIRCAM", f, "CLEAR")) for f in ("F356W", "F444W", "F480M")}
    assert mean["F356W"] < mean["F444W"] < mean["F480M"]


def test_niriss_f090w_low_rate_is_etc_like() -> None:
    # loose: Mirage's ETC-matched NIRISS F090W 'low' imaging background, ~1–1.6 e⁻/s/pixel (PR #430)
    info = _info("NIRISS", "CLEAR", "F090W")
    assert 0.5 < bkg.background_rate("low", info, info.pixel_area_sr) < 3.2


@pytest.mark.parametrize(
    ("level", "area", "match"),
    [
        ("meduim", 1e-13, "did you mean 'medium'"),
        (-1.0, 1e-13, ">= 0"),
        (True, 1e-13, "expected low"),
        ("low", 0.0, "positive"),
    ],
)
def test_background_bad_arguments(level: object, area: float, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        bkg.background_rate(level, _info("NIRCAM", "F200W", "CLEAR"), area)  # type: ignore[arg-type]
