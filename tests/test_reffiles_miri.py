"""The embedded default MIRI imager Detector1 references (mask … emicorr).

Every file opens with its jwst data model, the files agree with each other
(defects, reference columns, non-imaging area), the science numbers are the
documented ones, generation is deterministic, and the near-infrared default
bytes did not change when the shared array code learned interleaved amplifiers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from webbflow import dq
from webbflow.detectors import MIRI_SUBARRAYS, MIRIMAGE, get_detector
from webbflow.engine.step import RefFile
from webbflow.errors import ReferenceFileError
from webbflow.io.reffiles import arrays, defaults, miri_detector
from webbflow.io.reffiles import miri_arrays as ma
from webbflow.io.reffiles.emicorr import open_emicorr, select_case
from webbflow.io.reffiles.opener import open_reference
from webbflow.steps.rscd.step import group_skips
from webbflow.testing import make_exposure

#: Small dark (groups) for the tests.
DARK_GROUPS = 10
REFTYPES = tuple(miri_detector.WRITERS)


def _generate(cache: Path) -> dict[str, Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WEBBFLOW_CACHE", str(cache))
        return {
            rt: defaults.default_reference(rt, "MIRIMAGE", DARK_GROUPS if rt == "dark" else None)
            for rt in REFTYPES
        }


@pytest.fixture(scope="module")
def miri_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    yield _generate(tmp_path_factory.mktemp("miri-cache"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _data(path: Path, ext: str) -> np.ndarray:
    with fits.open(path) as hdul:
        return np.asarray(hdul[ext].data)


def _std_dq(path: Path, reftype: str) -> np.ndarray:
    """The file's DQ in standard bits, as the opener translates it (full frame)."""
    meta = {"instrument": {"name": "MIRI", "detector": "MIRIMAGE"}}
    ds = make_exposure(np.zeros((1, 1, MIRIMAGE.ny, MIRIMAGE.nx), np.float32), meta=meta)
    ds["x"] = np.arange(MIRIMAGE.nx)
    ds["y"] = np.arange(MIRIMAGE.ny)
    return open_reference(RefFile(reftype, path, path.name), ds)["dq"].values


DATAMODEL_CLASSES = {
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


@pytest.mark.parametrize("reftype", REFTYPES)
def test_stdatamodels_opens_and_validates(miri_set: dict[str, Path], reftype: str) -> None:
    pytest.importorskip("jwst")
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    cls = getattr(datamodels, DATAMODEL_CLASSES[reftype])
    with cls(str(miri_set[reftype])) as model:
        model.validate()
        assert model.meta.instrument.name == "MIRI"
        assert model.meta.instrument.detector == "MIRIMAGE"
        assert model.meta.reftype.upper() == reftype.upper()
        if reftype == "dark":
            assert model.data.shape == (2, DARK_GROUPS, 1024, 1032)
            assert model.dq.shape == (2, 1, 1024, 1032)
        if reftype == "reset":
            assert model.data.shape == (2, ma.RESET_NGROUPS, 1024, 1032)
        if reftype == "mask":  # stdatamodels translates DQ_DEF to standard bits, as our opener
            np.testing.assert_array_equal(model.dq, _std_dq(miri_set["mask"], "mask"))
        if reftype == "rscd":
            assert len(model.rscd_group_skip_table) == len(ma.rscd_rows())


def test_no_superbias_or_ipc_default() -> None:
    for reftype in ("superbias", "ipc"):
        with pytest.raises(ReferenceFileError, match=rf"no embedded default {reftype} .*MIRIMAGE"):
            defaults.default_reference(reftype, "MIRIMAGE")


def test_defects_reference_columns_and_non_imaging_area(miri_set: dict[str, Path]) -> None:
    d = arrays.defect_classes(MIRIMAGE)
    mask = _std_dq(miri_set["mask"], "mask")
    refcols = np.zeros(mask.shape, bool)
    refcols[:, :4] = refcols[:, -4:] = True
    assert (mask[refcols] == dq.REFERENCE_PIXEL).all()  # only that bit: refpix uses them
    assert not (mask[~refcols] & dq.REFERENCE_PIXEL).any()
    assert ((mask[d.dead] & (dq.DEAD | dq.DO_NOT_USE)) == dq.DEAD | dq.DO_NOT_USE).all()
    assert ((mask[d.hot] & (dq.HOT | dq.DO_NOT_USE)) == dq.HOT | dq.DO_NOT_USE).all()
    assert (mask[d.warm] & dq.WARM).all() and (mask[d.low_qe] & dq.LOW_QE).all()
    # the dark flags the same hot/warm pixels as the mask, in both integrations
    dark_dq = _data(miri_set["dark"], "DQ")
    for i in range(2):
        np.testing.assert_array_equal(dark_dq[i, 0] == dq.HOT, d.hot)
        np.testing.assert_array_equal(dark_dq[i, 0] == dq.WARM, d.warm)
    np.testing.assert_array_equal(_std_dq(miri_set["dark"], "dark") & dq.HOT != 0, d.hot)
    # linearity: NO_LIN_CORR exactly on the no-linearity pixels; saturation: NO_SAT_CHECK
    np.testing.assert_array_equal(_std_dq(miri_set["linearity"], "linearity") == dq.NO_LIN_CORR, d.no_lin)
    np.testing.assert_array_equal(_std_dq(miri_set["saturation"], "saturation") == dq.NO_SAT_CHECK, d.no_sat)
    # non-imaging area: NON_SCIENCE without DO_NOT_USE, left of the imager field and below Lyot
    non_science = (mask & dq.NON_SCIENCE) != 0
    np.testing.assert_array_equal(non_science, ma.non_imaging_region(MIRIMAGE))
    assert not (mask[non_science & ~(d.dead | d.hot)] & dq.DO_NOT_USE).any()
    assert non_science[:, 4:359].all(axis=1)[:718].all() and not non_science[718:].any()
    assert not non_science[:, 359:].any()


def test_non_imaging_edges_follow_siaf() -> None:
    pysiaf = pytest.importorskip("pysiaf")
    siaf = pysiaf.Siaf("MIRI")
    illum_x, _ = siaf["MIRIM_ILLUM"].corners("det")
    _, lyot_y = siaf["MIRIM_MASKLYOT"].corners("det")
    assert int(np.min(illum_x) + 0.5) - 1 == ma.IMAGER_X0  # first 1-based imager column, to 0-based
    assert int(np.min(lyot_y) + 0.5) - 1 == ma.LYOT_Y0
    for name in ("MIRIM_CORON1065", "MIRIM_CORON1140", "MIRIM_CORON1550"):  # 4QPMs are inside
        xs, ys = siaf[name].corners("det")
        assert np.max(xs) < ma.IMAGER_X0 and np.max(ys) < ma.LYOT_Y0


def test_linearity_saturation_and_gain_numbers(miri_set: dict[str, Path]) -> None:
    coeffs = _data(miri_set["linearity"], "COEFFS").astype(np.float64)
    sat = _data(miri_set["saturation"], "SCI").astype(np.float64)
    d = arrays.defect_classes(MIRIMAGE)
    ok = ~(d.no_lin | d.dead)
    base = ma.zero_level(MIRIMAGE)

    def corrected(raw: np.ndarray) -> np.ndarray:
        return sum(coeffs[k] * raw**k for k in range(coeffs.shape[0]))

    np.testing.assert_allclose(corrected(base)[ok], base[ok], atol=0.02)  # no correction at zero level
    well = MIRIMAGE.saturation - base
    gain_at_sat = (corrected(base + well) - base - well) / well
    assert abs(np.median(gain_at_sat[ok]) - MIRIMAGE.nonlinearity) < 0.005
    # saturation: raw DN around the nominal, per-amplifier offsets on interleaved columns
    good = ~(d.dead | MIRIMAGE.reference_mask())
    assert abs(np.median(sat[good]) - MIRIMAGE.saturation) < 100
    per_amp = [np.median(sat[:, a::4][good[:, a::4]]) - MIRIMAGE.saturation for a in range(4)]
    np.testing.assert_allclose(per_amp, MIRIMAGE.amp_bias_offsets, atol=25)
    gain = _data(miri_set["gain"], "SCI")
    assert abs(np.median(gain) - MIRIMAGE.gain) < 0.2
    with fits.open(miri_set["readnoise"]) as hdul:
        assert abs(np.median(hdul["SCI"].data) - MIRIMAGE.read_noise) < 0.5


def test_dark_and_reset_numbers(miri_set: dict[str, Path]) -> None:
    dark = _data(miri_set["dark"], "SCI")
    light = ~MIRIMAGE.reference_mask()
    t = MIRIMAGE.frame_time_full
    with fits.open(miri_set["dark"]) as hdul:
        header = hdul[0].header
        assert (header["NFRAMES"], header["GROUPGAP"], header["NINTS"]) == (1, 0, 2)
        assert abs(header["AVDRKCUR"] / MIRIMAGE.dark_current - 1) < 0.1
    # late-group slope = rate x factor: integration 1 is 10 % warmer than the later ones
    slope = (dark[:, -1] - dark[:, -2])[:, light] / t
    rate_dn = ma.dark_rate_dn(MIRIMAGE)[light]
    settle_tail = np.array(ma.DARK_SETTLE_DN) * np.exp(-DARK_GROUPS / ma.DARK_SETTLE_GROUPS) / t
    for i, factor in enumerate(ma.DARK_RATE_FACTOR):
        expected = rate_dn * factor + settle_tail[i] * (np.exp(1 / ma.DARK_SETTLE_GROUPS) - 1)
        np.testing.assert_allclose(slope[i], expected, rtol=1e-3, atol=1e-3)
    assert (dark[:, :, ~light] == 0).all()
    reset = _data(miri_set["reset"], "SCI")
    first = reset[:, 0]
    assert abs(np.mean(first[0]) / ma.RESET_AMPLITUDE_DN[0] - 1) < 0.1  # per-amplifier ±5 %
    np.testing.assert_allclose(first[0] / first[1], 4 / 3, rtol=1e-5)  # integration 1 larger
    means = reset.mean(axis=(2, 3))
    assert (np.diff(means, axis=1) < 0).all()  # decays every group
    assert (np.abs(reset[:, -1]) < 0.06 * np.abs(first)).all()  # ~0 by the reference's last group


def test_rscd_and_emicorr_as_the_steps_read_them(miri_set: dict[str, Path]) -> None:
    meta = {"instrument": {"name": "MIRI", "detector": "MIRIMAGE"}}
    ds = make_exposure(np.zeros((1, 1, 4, 4), np.float32), meta=meta)
    table = open_reference(RefFile("rscd", miri_set["rscd"], "rscd"), ds)
    assert group_skips(table, "FASTR1", "FULL") == (1, 4)
    assert group_skips(table, "SLOWR1", "FULL") == (1, 1)
    assert group_skips(table, "FASTR1", "SUB64") == (1, ma.RSCD_MAX_SKIP)
    assert group_skips(table, "SLOWR1", "SUB64") is None  # SLOW reads the full array only
    emi = open_emicorr(RefFile("emicorr", miri_set["emicorr"], "emicorr"), ds)
    full = select_case(emi, "FULL", "FASTR1", "MIRIMAGE")
    sub = select_case(emi, "SUB256", "FASTR1", "MIRIMAGE")
    slow = select_case(emi, "FULL", "SLOWR1", "MIRIMAGE")
    assert full is not None and sub is not None and slow is not None
    assert [f.name for f in full.frequencies] == ["Hz10", "Hz164", "Hz218a"]
    assert [f.name for f in sub.frequencies] == ["Hz390", "Hz10"]
    assert (full.rowclocks, full.frameclocks) == (271, 277504)
    assert [f.frequency for f in slow.frequencies] == [10.039216]
    # frame clocks agree with the detector's frame times (10 µs clocks)
    assert full.frameclocks * 1e-5 == pytest.approx(MIRIMAGE.frame_time_full)


def test_generation_is_deterministic(miri_set: dict[str, Path], tmp_path: Path) -> None:
    again = _generate(tmp_path / "second")
    for reftype, path in miri_set.items():
        assert path.name == again[reftype].name
        assert _sha(path) == _sha(again[reftype]), reftype


#: sha256 of near-infrared defaults generated before MIRI (generator version 4): the shared
#: array code (amp_map, refpix_border) must not change them.
NIR_SHA256_V4 = {
    "NIS/flat": "2876603d59de45580799c59ee93599f41252454de686ff1c903eec9862a77af1",
    "NIS/gain": "258050f2866ce5946a13f7e59c51a82b568012f6f3ca82179b700cc627cedf55",
    "NIS/mask": "b7b36aeb1fd8cfd8ce215f67d8ad7ac5cadd85c7a987cb1b3e8f1d624ef114bf",
    "NIS/readnoise": "76fe6344b21eb1afb45b2fe4dafaf08fe73a1f39ef6c8fafbf9d1859bb91d733",
    "NIS/saturation": "427a5d5f8d65c47b5976a3c0c741d17a01d0e09864bd3fb40df24b5393c19f88",
    "NIS/superbias": "77f194ca2e82e3a8955876f06ed5b382b08ba20a29f275d3d10890f191f5c5b6",
    "NRCA1/gain": "c803a831ef362d99716b2d0049646c27dee0bfbe75f9abc7d7090423a2c7c8d0",
    "NRCA1/mask": "4e1ce3b8a06625e4bc26f73be91f36047239087956fdd5535c5f182236ff08b4",
    "NRCA1/saturation": "9d0a32080b2eb520e07f23c7d3fdedc25ee67d26be5597133a445a2c4cd87865",
}


def test_near_infrared_bytes_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if arrays.GENERATOR_VERSION != "4":
        pytest.skip("hashes recorded for generator version 4")
    monkeypatch.setenv("WEBBFLOW_CACHE", str(tmp_path))
    for key, sha in NIR_SHA256_V4.items():
        detector, reftype = key.split("/")
        assert _sha(defaults.default_reference(reftype, detector)) == sha, key
    # and the stripe layout the near-infrared files rely on
    nis, nrc = get_detector("NIS"), get_detector("NRCA1")
    np.testing.assert_array_equal(arrays.amp_map(nis, (0, 1, 2, 3))[:, 0], np.repeat(np.arange(4.0), 512))
    np.testing.assert_array_equal(arrays.amp_map(nrc, (0, 1, 2, 3))[0], np.repeat(np.arange(4.0), 512))
    np.testing.assert_array_equal(arrays.amp_map(MIRIMAGE, (0, 1, 2, 3))[5, :8], [0, 1, 2, 3] * 2)


def test_resolver_opens_every_miri_default_for_a_subarray(miri_set: dict[str, Path]) -> None:
    from webbflow.io.reffiles.resolver import ReferenceResolver

    sub = MIRI_SUBARRAYS["BRIGHTSKY"]
    meta = {
        "instrument": {"name": "MIRI", "detector": "MIRIMAGE"},
        "exposure": {"readpatt": "FASTR1", "nframes": 1, "groupgap": 0},
        "subarray": {"name": sub.name, "xstart": sub.xstart, "ystart": sub.ystart},
    }
    ds = make_exposure(np.zeros((2, 12, sub.ysize, sub.xsize), np.float32), meta=meta, chunks=(200, 300))
    resolver = ReferenceResolver(use_crds=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WEBBFLOW_CACHE", str(miri_set["mask"].parents[2]))
        refs = {rt: resolver.open(resolver.resolve(rt, ds, None), ds) for rt in REFTYPES}  # type: ignore[arg-type]
    assert refs["dark"]["sci"].dims == ("dark_integration", "dark_group", "y", "x")
    assert refs["dark"]["sci"].shape == (2, 12, sub.ysize, sub.xsize)
    assert refs["dark"]["dq"].dims == ("y", "x")
    assert refs["reset"]["sci"].shape == (2, ma.RESET_NGROUPS, sub.ysize, sub.xsize)
    y0, x0 = sub.ystart - 1, sub.xstart - 1
    full_reset = _data(miri_set["reset"], "SCI")[:, :, y0 : y0 + sub.ysize, x0 : x0 + sub.xsize]
    np.testing.assert_array_equal(refs["reset"]["sci"].values, full_reset)
    mask = refs["mask"]["dq"].values
    assert not (mask & dq.NON_SCIENCE).any()  # BRIGHTSKY lies in the imager field
    assert refs["rscd"].sizes["row"] == len(ma.rscd_rows())
    assert "wave_Hz390" in refs["emicorr"]
