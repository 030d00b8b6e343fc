"""``webbflow program`` on MIRI imaging: APT plan -> simulate -> detector1 -> image2 -> image3.

Four MIRIMAGE exposures of tests/data/apt/miri_img_nrc_img (two dithers in each of F1000W and
F770W), reduced to SUB64 and 5 groups; one bright star at each exposure's reference point.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from webbflow.graphs.plan import Plan, make_plan, select_detectors
from webbflow.graphs.program import ProgramOptions, run_program
from webbflow.graphs.program_field import with_synthetic_fields

APT = Path(__file__).parent / "data" / "apt"
XML, POINTING = APT / "miri_img_nrc_img.xml", APT / "miri_img_nrc_img.pointing"
FILTERS = ("F1000W", "F770W")
MOSAICS = {f: f"jw24242-o001_t001_miri_{f.lower()}-sub64" for f in FILTERS}
STAR_ABMAG = 13.0  # well above the noise of a 0.34 s SUB64 exposure, far from saturation


def _plan(tmp: Path) -> Plan:
    """The MIRI rows, two exposures per filter, with a star catalog (a star per exposure)."""
    plan = select_detectors(make_plan(XML, POINTING, subarray="SUB64", max_groups=5), ["MIRIMAGE"])
    table = plan.table
    keep = [i for f in FILTERS for i in np.flatnonzero(np.asarray(table["filter"]) == f)[:2]]
    table = table[keep]
    catalog = tmp / "stars.cat"
    lines = ["# abmag", "index x_or_RA y_or_Dec " + " ".join(f"miri_{f.lower()}_magnitude" for f in FILTERS)]
    lines += [f"{i + 1} {r['ra']:.9f} {r['dec']:.9f} {STAR_ABMAG} {STAR_ABMAG}" for i, r in enumerate(table)]
    catalog.write_text("\n".join(lines) + "\n")
    table["catalog_point"] = [str(catalog)] * len(table)
    return dataclasses.replace(plan, table=table)


def _options(out: Path) -> ProgramOptions:
    return ProgramOptions(output_dir=out, scheduler="threads", seed=3, progress=False)


def test_miri_plan_rows_and_synthetic_field(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    rows = list(plan.rows())
    assert len(rows) == 4 and {r["filter"] for r in rows} == set(FILTERS)
    for r in rows:
        assert (r["aperture"], r["subarray"], r["readpatt"], r["ngroups"]) == (
            "MIRIM_SUB64",
            "SUB64",
            "FASTR1",
            5,
        )
    field = with_synthetic_fields(plan, tmp_path / "field", seed=1)
    stars = Table.read(field.table["catalog_point"][0], format="ascii")
    assert {f"miri_{f.lower()}_magnitude" for f in FILTERS} <= set(stars.colnames)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Plan, Any]:
    out = tmp_path_factory.mktemp("program_miri")
    plan = _plan(out)
    return out, plan, run_program(plan, _options(out))


@pytest.mark.slow
def test_miri_program_writes_every_product(first_run: tuple[Path, Plan, Any]) -> None:
    out, plan, report = first_run
    assert report.ok, report.summary()
    rows = list(plan.rows())
    for row in rows:
        root = row["filename"]
        for suffix in ("uncal", "rate", "rateints", "cal", "i2d"):
            path = out / f"{root}_{suffix}.fits"
            assert path.is_file(), path.name
            h = fits.getheader(path)
            assert (h["INSTRUME"], h["DETECTOR"], h["SUBARRAY"], h["READPATT"]) == (
                "MIRI",
                "MIRIMAGE",
                "SUB64",
                "FASTR1",
            ), path.name
            assert h["FILTER"] == row["filter"]
        with fits.open(out / f"{root}_uncal.fits") as hdul:  # 64 rows x (64 + 8 reference) columns
            assert hdul["SCI"].data.shape == (1, 5, 64, 72)
        with fits.open(out / f"{root}_cal.fits") as hdul:
            assert hdul[0].header["S_PHOTOM"] == "COMPLETE" and hdul["SCI"].header["BUNIT"] == "MJy/sr"
    assert len(report.exposures.written) == 4 * 5 and not report.exposures.skipped
    for filt, product in MOSAICS.items():
        for suffix in ("_i2d.fits", "_cat.ecsv"):
            assert (out / f"{product}{suffix}").is_file(), product + suffix
        with fits.open(out / f"{product}_i2d.fits") as hdul:
            assert hdul[0].header["FILTER"] == filt and hdul[0].header["INSTRUME"] == "MIRI"
        # the stars of this filter's exposures are found at their catalog positions
        cat = Table.read(out / f"{product}_cat.ecsv")
        stars = [r for r in rows if r["filter"] == filt]
        assert len(cat) >= 1
        ra, dec = np.asarray(cat["sky_centroid"].ra.deg), np.asarray(cat["sky_centroid"].dec.deg)
        for star in stars:
            sep = np.hypot((ra - star["ra"]) * np.cos(np.radians(star["dec"])), dec - star["dec"]) * 3600
            assert sep.min() < 0.2, (
                f"{filt}: star at {star['ra']}, {star['dec']} missed ({sep.min():.2f} arcsec)"
            )


@pytest.mark.slow
def test_miri_rerun_skips_everything(first_run: tuple[Path, Plan, Any]) -> None:
    out, plan, _ = first_run
    report = run_program(plan, _options(out))
    assert report.ok, report.summary()
    assert not report.exposures.written and len(report.exposures.skipped) == 4 * 5
    assert sorted(report.mosaics_skipped) == sorted(MOSAICS.values()) and not report.mosaics_written
