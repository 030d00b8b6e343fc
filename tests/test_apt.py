"""APT reader: real APT exports → one planned exposure per detector, checked against physics.

The expected numbers come from the exports themselves (templates, dithers, pointing rows)
and from independent pysiaf computations, not from this code.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pysiaf
import pytest
from pysiaf.utils import rotations

from webbflow.errors import InputError
from webbflow.io.apt import AptProgram, PlannedExposure, expand, mirage_names, read_apt

DATA = Path(__file__).parent / "data" / "apt"


def _load(name: str, **kw: Any) -> tuple[AptProgram, list[PlannedExposure]]:
    program = read_apt(DATA / f"{name}.xml", DATA / f"{name}.pointing")
    return program, expand(program, **kw)


def _sep_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    a = np.radians([ra1, dec1, ra2, dec2])
    c = np.sin(a[1]) * np.sin(a[3]) + np.cos(a[1]) * np.cos(a[3]) * np.cos(a[0] - a[2])
    return float(np.degrees(np.arccos(np.clip(c, -1, 1))) * 3600)


def test_nircam_module_b_imaging_names_filters_and_dithers() -> None:
    program, rows = _load("example_imaging_program")
    assert program.program == "42424" and program.unsupported == ()
    # 1 filter pair × (2 primary × 2 subpixel) dithers × (4 SW + 1 LW) module B detectors
    assert len(rows) == 20
    expected = {f"jw42424001001_01101_{e:05d}_nrcb{d}" for e in range(1, 5) for d in (1, 2, 3, 4)}
    expected |= {f"jw42424001001_01101_{e:05d}_nrcblong" for e in range(1, 5)}
    assert {r.filename for r in rows} == expected
    for r in rows:
        long = r.detector == "NRCBLONG"
        assert (r.filter, r.pupil) == (("F356W", "CLEAR") if long else ("F115W", "CLEAR"))
        assert r.aperture == ("NRCB5_FULL" if long else f"{r.detector}_FULL")
        assert (r.readpatt, r.ngroups, r.nints, r.subarray) == ("RAPID", 4, 1, "FULL")
    nrcb1 = [r for r in rows if r.detector == "NRCB1"]
    assert [(r.primary_dither_position, r.subpix_dither_position) for r in nrcb1] == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    ]
    assert {(r.total_primary_dither_positions, r.total_subpix_dither_positions) for r in rows} == {(2, 2)}
    # exposures follow each other: start times strictly increase
    times = [r.time_obs for r in nrcb1]
    assert times == sorted(times) and len(set(times)) == 4


def test_sky_positions_match_an_independent_pysiaf_attitude() -> None:
    program, rows = _load("example_imaging_program", roll=37.0)
    siaf = pysiaf.Siaf("NIRCam")
    obs = program.observations[0]
    for r in rows[:5]:
        ap = siaf[r.aperture]
        # independent path: the aperture's own ideal→tel→sky transform with the attitude set
        # PA_V3 = 37° is the roll at V1; the roll at the target's (v2, v3) follows from it
        at_v1 = rotations.attitude(0.0, 0.0, obs.target_ra, obs.target_dec, 37.0)
        local = rotations.posangle(at_v1, r.v2, r.v3)
        att = rotations.attitude(r.v2, r.v3, obs.target_ra, obs.target_dec, local)
        # (to 1e-3 deg: the local roll is taken at an attitude centred on the target, as Mirage does)
        assert abs(rotations.posangle(att, 0.0, 0.0) - 37.0) < 1e-3
        ap.set_attitude_matrix(att)
        ra, dec = ap.idl_to_sky(0.0, 0.0)
        assert _sep_arcsec(r.ra, r.dec, float(ra), float(dec)) < 1e-3
        assert r.v3pa == 37.0
    # inverse path: the target falls at the row's (V2, V3) — APT's PRD may differ from the
    # installed SIAF by ~1", so the row (not the aperture's V2Ref/V3Ref) is the reference
    first = obs.rows[0]
    ap = siaf["NRCB1_FULL"]
    local = rotations.posangle(
        rotations.attitude(0.0, 0.0, obs.target_ra, obs.target_dec, 37.0), first.v2, first.v3
    )
    ap.set_attitude_matrix(rotations.attitude(first.v2, first.v3, obs.target_ra, obs.target_dec, local))
    v2, v3 = ap.sky_to_tel(obs.target_ra, obs.target_dec)
    assert math.hypot(float(v2) - first.v2, float(v3) - first.v3) < 1e-3


def test_dither_offsets_and_roll_move_the_detectors_rigidly() -> None:
    _, rows = _load("example_imaging_program")
    b1 = {r.exposure: r for r in rows if r.detector == "NRCB1"}
    # dithers 1 → 3 move the telescope by the row's V2/V3 change (8.19", 8.19" in ideal)
    dv = math.hypot(b1[3].v2 - b1[1].v2, b1[3].v3 - b1[1].v3)
    assert dv == pytest.approx(math.hypot(8.19, 8.19), abs=0.01)
    assert _sep_arcsec(b1[1].ra, b1[1].dec, b1[3].ra, b1[3].dec) == pytest.approx(dv, abs=0.01)
    # a roll turns the focal plane about the target: detector separations are unchanged
    _, rolled = _load("example_imaging_program", roll={1: 90.0})
    first = [r for r in rows if r.exposure == 1]
    first_rolled = [r for r in rolled if r.exposure == 1]
    d0 = _sep_arcsec(first[0].ra, first[0].dec, first[2].ra, first[2].dec)
    d1 = _sep_arcsec(first_rolled[0].ra, first_rolled[0].dec, first_rolled[2].ra, first_rolled[2].dec)
    assert d0 == pytest.approx(d1, abs=1e-3) and d0 > 60
    assert _sep_arcsec(first[0].ra, first[0].dec, first_rolled[0].ra, first_rolled[0].dec) > 30


def test_both_modules_with_niriss_parallel() -> None:
    _, rows = _load("1071")
    # 10 observations × 1 exposure: 10 NIRCam detectors (module ALL) + NIRISS in parallel
    assert Counter(r.instrument for r in rows) == {"NIRCAM": 100, "NIRISS": 10}
    nircam = [r for r in rows if r.instrument == "NIRCAM" and r.observation == 1]
    assert sorted(r.detector for r in nircam) == sorted(
        [f"NRC{m}{n}" for m in "AB" for n in range(1, 5)] + ["NRCALONG", "NRCBLONG"]
    )
    assert {r.filter for r in nircam if "LONG" in r.detector} == {"F277W"}
    assert {r.filter for r in nircam if "LONG" not in r.detector} == {"F115W"}
    nis = [r for r in rows if r.instrument == "NIRISS"]
    assert all(not r.prime and r.sequence == 2 and r.filename.endswith("_01201_00001_nis") for r in nis)
    assert {(r.filter, r.pupil) for r in nis} == {("CLEAR", "F200W")}  # F200W sits in the pupil wheel
    # the parallel is taken at the same time as the prime exposure it rides along with
    start = {(r.observation, r.prime): r.time_obs for r in rows}
    assert all(start[(o, True)] == start[(o, False)] for o in range(1, 11))
    # modules A and B are ~ 44" apart on the sky (V2 separation of NRCA5/NRCB5 references)
    a5, b5 = (next(r for r in nircam if r.detector == d) for d in ("NRCALONG", "NRCBLONG"))
    siaf = pysiaf.Siaf("NIRCam")
    dv2 = siaf["NRCA5_FULL"].V2Ref - siaf["NRCB5_FULL"].V2Ref
    dv3 = siaf["NRCA5_FULL"].V3Ref - siaf["NRCB5_FULL"].V3Ref
    assert _sep_arcsec(a5.ra, a5.dec, b5.ra, b5.dec) == pytest.approx(math.hypot(dv2, dv3), rel=1e-4)


def test_nircam_prime_niriss_imaging_parallel_sequences() -> None:
    _, rows = _load("nrc_img_niriss_img")
    assert Counter(r.instrument for r in rows) == {"NIRCAM": 30, "NIRISS": 6}
    nis = [r for r in rows if r.instrument == "NIRISS"]
    assert [r.filename for r in nis] == [f"jw14141001001_01201_{e:05d}_nis" for e in range(1, 7)]
    # the parallel carries the prime's pattern: 3 primary × 2 subpixel (…-WITH-NIRISS)
    assert [(r.primary_dither_position, r.subpix_dither_position) for r in nis] == [
        (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)
    ]  # fmt: skip
    assert {r.aperture for r in nis} == {"NIS_CEN"} and {r.filter for r in nis} == {"CLEAR"}


def test_niriss_imaging_and_fgs_external_calibration() -> None:
    _, nis = _load("niriss_img")
    (r,) = nis
    assert r.filename == "jw90909002001_01101_00001_nis"
    assert (r.readpatt, r.ngroups, r.nints, r.pupil, r.aperture) == ("NIS", 3, 2, "F115W", "NIS_CEN")
    _, fgs = _load("fgs_external", dates={2: "2027-05-01T10:00:00"})
    assert [r.filename for r in fgs] == [
        "jw34567002001_01101_00001_guider1",
        "jw34567002002_01101_00001_guider1",
    ]
    assert {(r.detector, r.aperture, r.filter, r.pupil) for r in fgs} == {("GUIDER1", "FGS1_FULL", "", "")}
    assert fgs[0].date_obs == "2027-05-01" and fgs[0].time_obs == "10:00:00.000"
    assert fgs[1].time_obs >= "10:10:00"  # a new visit starts after a slew
    # Mirage numbers exposures across visits and calls the guider g1
    assert mirage_names(fgs) == ["jw34567002001_01101_00001_g1", "jw34567002002_01101_00002_g1"]


def test_unsupported_templates_are_listed_never_dropped() -> None:
    program, rows = _load("nircam_img_niriss_wfss")
    assert Counter(r.instrument for r in rows) == {"NIRCAM": 80}  # the prime is kept
    assert {(u.observation, u.template, u.instrument) for u in program.unsupported} >= {
        (1, "NirissWfss", "NIRISS")
    }
    program, rows = _load("skipped_obs")
    assert {(u.observation, u.template) for u in program.unsupported} == {
        (25, "MiriMRS"), (13, "NirspecFixedSlitSpectroscopy")
    }  # fmt: skip
    assert {r.observation for r in rows} == {1, 3, 10, 16}
    program, rows = _load("miri_img_niriss_wfss")  # MIRI imaging prime, NIRISS WFSS parallel
    assert Counter(r.instrument for r in rows) == {"MIRI": 30}
    assert {u.template for u in program.unsupported} == {"NirissWfss"}
    assert all(u.reason for u in program.unsupported)
    # the parallel's direct images are reported under the WFSS template, not the MIRI prime
    assert any("direct image" in u.reason for u in program.unsupported)


def test_miri_imaging_prime_expands_per_filter_and_dither() -> None:
    """MiriImaging: one MIRIMAGE exposure per pointing row, its filter's readout and dither pattern."""
    _, rows = _load("miri_img_nrc_img")
    miri = [r for r in rows if r.instrument == "MIRI"]
    science = _pointing_rows("miri_img_nrc_img", "SCIENCE")
    assert len(miri) == len(science) == 15
    assert {(r.detector, r.aperture, r.subarray, r.sequence) for r in miri} == {
        ("MIRIMAGE", "MIRIM_FULL", "FULL", 1)
    }
    # the XML: F1000W SLOW 10 groups with "Dither 4" (4-Point-Sets), F770W SLOW 6 with "Dither 2"
    by_filter = {r.filter: (r.readpatt, r.ngroups, r.nints, r.primary_dither_type) for r in miri}
    assert by_filter == {"F1000W": ("SLOWR1", 10, 1, "4-POINT-SETS"), "F770W": ("SLOWR1", 6, 1, "CYCLING")}
    assert [r.exposure for r in miri] == list(range(1, 16))
    assert miri[0].filename == "jw24242001001_01101_00001_mirimage"
    # the target sits at the row's (V2, V3); the imager's reference point is V2Ref/V3Ref away
    from astropy.coordinates import SkyCoord

    ap = pysiaf.Siaf("MIRI")["MIRIM_FULL"]
    for r in miri[:3]:
        offset = math.hypot(ap.V2Ref - r.v2, ap.V3Ref - r.v3)
        sep = SkyCoord(r.ra, r.dec, unit="deg").separation(SkyCoord(r.target_ra, r.target_dec, unit="deg"))
        assert sep.arcsec == pytest.approx(offset, abs=0.05)
    # a SLOW frame is 23.9 s: the exposures follow each other by their readout time + overhead
    t = [datetime.fromisoformat(f"{r.date_obs}T{r.time_obs}") for r in miri[:2]]
    assert (t[1] - t[0]).total_seconds() == pytest.approx((1 + 10) * 23.88992 + 30.0, abs=0.01)


def test_miri_readout_pattern_must_be_known(tmp_path: Path) -> None:
    text = (
        (DATA / "miri_img_nrc_img.xml")
        .read_text()
        .replace(
            "<mi:ReadoutPattern>SLOW</mi:ReadoutPattern>", "<mi:ReadoutPattern>SLOWEST</mi:ReadoutPattern>", 1
        )
    )
    (tmp_path / "p.xml").write_text(text)
    with pytest.raises(InputError, match="MIRI <ReadoutPattern> is 'SLOWEST'"):
        read_apt(tmp_path / "p.xml", DATA / "miri_img_nrc_img.pointing")


def _pointing_rows(name: str, kind: str) -> list[list[str]]:
    """The .pointing rows of ``kind`` (SCIENCE, PARALLEL…), split: an independent count."""
    rows = []
    for line in (DATA / f"{name}.pointing").read_text().splitlines():
        parts = line.split()
        if len(parts) > 17 and parts[0].isdigit() and kind in parts:
            rows.append(parts)
    return rows


def test_nircam_imaging_parallel_to_miri_imaging_prime() -> None:
    program, rows = _load("miri_img_nrc_img")
    # both the MIRI imaging prime and the NIRCam imaging parallel are expanded
    assert program.unsupported == ()
    assert Counter(r.instrument for r in rows) == {"NIRCAM": 75, "MIRI": 15}
    rows = [r for r in rows if r.instrument == "NIRCAM"]
    parallel_rows = _pointing_rows("miri_img_nrc_img", "PARALLEL")
    assert len(parallel_rows) == 15  # 12 dithers of MIRI's first filter, 3 of its second
    # 15 exposures × module B (4 short + 1 long detector), as Mirage makes (75)
    assert len(rows) == 75 and Counter(r.instrument for r in rows) == {"NIRCAM": 75}
    assert all(not r.prime and r.sequence == 2 and r.template == "NircamImaging" for r in rows)
    expected = {
        f"jw24242001001_01201_{e:05d}_nrcb{d}" for e in range(1, 16) for d in ("1", "2", "3", "4", "5")
    }
    assert set(mirage_names(rows)) == expected
    assert {r.filename for r in rows if r.detector == "NRCBLONG"} == {
        f"jw24242001001_01201_{e:05d}_nrcblong" for e in range(1, 16)
    }
    # the parallel's filter configs follow the prime's Exp: 12 × (F090W, F322W2, BRIGHT1 2 groups)
    # then 3 × (F115W, F356W, BRIGHT2)
    b1 = [r for r in rows if r.detector == "NRCB1"]
    b5 = [r for r in rows if r.detector == "NRCBLONG"]
    assert [(r.filter, r.readpatt, r.ngroups) for r in b1] == [("F090W", "BRIGHT1", 2)] * 12 + [
        ("F115W", "BRIGHT2", 2)
    ] * 3
    assert [r.filter for r in b5] == ["F322W2"] * 12 + ["F356W"] * 3
    assert [(r.primary_dither_position, r.total_primary_dither_positions) for r in b1] == [
        (d, 12) for d in range(1, 13)
    ] + [(d, 3) for d in range(1, 4)]
    # each exposure sits at its PARALLEL row's V2/V3: successive NRCB1 pointings move on the sky
    # by exactly the V2/V3 step of the rows (the telescope moves rigidly)
    for (r0, r1), (p0, p1) in zip(itertools.pairwise(b1), itertools.pairwise(parallel_rows), strict=True):
        assert (r0.v2, r0.v3) == (float(p0[13]), float(p0[14]))
        step = math.hypot(float(p1[13]) - float(p0[13]), float(p1[14]) - float(p0[14]))
        assert _sep_arcsec(r0.ra, r0.dec, r1.ra, r1.dec) == pytest.approx(step, abs=0.01)
    times = [r.time_obs for r in b1]
    assert times == sorted(times) and len(set(times)) == 15


def test_imaging_parallels_to_nirspec_and_wfss_primes() -> None:
    program, rows = _load("nrs_mos_and_nrc_img")
    assert [(u.observation, u.template) for u in program.unsupported] == [(2, "NirspecMOS")]
    assert len(rows) == 4 * 5 == 5 * len(_pointing_rows("nrs_mos_and_nrc_img", "PARALLEL"))
    assert {(r.subarray, r.aperture) for r in rows if r.detector == "NRCB2"} == {("SUB320", "NRCB2_SUB320")}
    assert {r.filename[:20] for r in rows} == {"jw89898002001_01201_"}
    # NIRISS WFSS prime: its 8 NIRCam imaging parallels are kept, the grism exposures are not
    program, rows = _load("niriss_wfss_nrc_img")
    assert [(u.template, u.instrument) for u in program.unsupported] == [("NirissWfss", "NIRISS")]
    assert Counter(r.instrument for r in rows) == {"NIRCAM": 40}
    # NIRCam WFSS prime (grism, direct and out-of-field exposures) + NIRISS imaging parallel:
    # one NIRISS exposure per PARALLEL row, its filter from the row's Exp (as Mirage's YAML say)
    program, rows = _load("nircam_wfss_niriss_img")
    assert [(u.template, u.instrument) for u in program.unsupported] == [("NircamWfss", "NIRCAM")]
    assert len(rows) == len(_pointing_rows("nircam_wfss_niriss_img", "PARALLEL")) == 56
    assert {(r.instrument, r.detector, r.sequence, r.prime) for r in rows} == {("NIRISS", "NIS", 2, False)}
    assert Counter(r.pupil for r in rows if r.filter == "CLEAR") == {"F090W": 14, "F150W": 14, "F115W": 12,
                                                                    "F200W": 1}  # fmt: skip
    # FGS external calibration in parallel to NIRSpec imaging: the guider comes from the row
    program, rows = _load("1164")
    assert {u.template for u in program.unsupported} == {"NirspecImaging", "NirspecInternalLamp"}
    assert len(rows) == len(_pointing_rows("1164", "PARALLEL")) == 30
    assert Counter(r.detector for r in rows) == {"GUIDER1": 24, "GUIDER2": 6}
    assert all(r.aperture == f"FGS{r.detector[-1]}_FULL" for r in rows)


def test_exposures_restart_in_every_visit() -> None:
    _, rows = _load("m51-mosaic")
    a1 = [r for r in rows if r.detector == "NRCA1"]
    assert [(r.visit, r.exposure) for r in a1] == [(v, 1) for v in range(1, 7)]
    assert len(rows) == 60


def test_malformed_inputs_raise_one_line_input_errors(tmp_path: Path) -> None:
    xml = (DATA / "example_imaging_program.xml").read_text()
    pointing = (DATA / "example_imaging_program.pointing").read_text()
    bad_xml = tmp_path / "trunc.xml"
    bad_xml.write_text(xml[: len(xml) // 2])
    with pytest.raises(InputError, match=r"trunc\.xml:\d+:\d+: not a well-formed") as err:
        read_apt(bad_xml, DATA / "example_imaging_program.pointing")
    assert "\n" not in str(err.value)
    bad_pointing = tmp_path / "bad.pointing"
    bad_pointing.write_text(pointing.replace("  1    1   1    3 NRCBS_FULL", "  1    1   7    3 NRCBS_FULL"))
    with pytest.raises(InputError, match=r"bad\.pointing:14: Exp 7 .* has 1 exposure specification"):
        read_apt(DATA / "example_imaging_program.xml", bad_pointing)
    other_obs = tmp_path / "other.pointing"
    other_obs.write_text(pointing.replace("** Visit 1:1", "** Visit 4:1"))
    with pytest.raises(InputError, match=r"other\.pointing:\d+: observation 4 is not in"):
        read_apt(DATA / "example_imaging_program.xml", other_obs)
    with pytest.raises(InputError, match=r"missing\.pointing: cannot read"):
        read_apt(DATA / "example_imaging_program.xml", tmp_path / "missing.pointing")
