"""The resolver against a local CRDS cache built by the test (no network).

The cache holds a server_config, a hand-written pmap → imap → rmap for
NIRCam gain (NRCA1 only) and one small subarray gain reference file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from webbflow.errors import ReferenceFileError
from webbflow.io.reffiles import ReferenceResolver
from webbflow.testing import make_exposure

crds = pytest.importorskip("crds")

REF_NAME = "jwst_nircam_gain_0001.fits"
MAPPINGS = {
    "jwst_0001.pmap": """header = {
    'derived_from' : 'created by the webbflow tests',
    'mapping' : 'PIPELINE',
    'name' : 'jwst_0001.pmap',
    'observatory' : 'JWST',
    'parkey' : ('META.INSTRUMENT.NAME',),
    'sha1sum' : 'none',
}

selector = {
    'NIRCAM' : 'jwst_nircam_0001.imap',
}
""",
    "jwst_nircam_0001.imap": """header = {
    'derived_from' : 'created by the webbflow tests',
    'instrument' : 'NIRCAM',
    'mapping' : 'INSTRUMENT',
    'name' : 'jwst_nircam_0001.imap',
    'observatory' : 'JWST',
    'parkey' : ('REFTYPE',),
    'sha1sum' : 'none',
}

selector = {
    'gain' : 'jwst_nircam_gain_0001.rmap',
}
""",
    "jwst_nircam_gain_0001.rmap": f"""header = {{
    'classes' : ('Match', 'UseAfter'),
    'derived_from' : 'created by the webbflow tests',
    'filekind' : 'GAIN',
    'instrument' : 'NIRCAM',
    'mapping' : 'REFERENCE',
    'name' : 'jwst_nircam_gain_0001.rmap',
    'observatory' : 'JWST',
    'parkey' : (('META.INSTRUMENT.DETECTOR',), ('META.OBSERVATION.DATE', 'META.OBSERVATION.TIME')),
    'sha1sum' : 'none',
}}

selector = Match({{
    'NRCA1' : UseAfter({{
        '2000-01-01 00:00:00' : '{REF_NAME}',
    }}),
}})
""",
}

SERVER_CONFIG = {
    "observatory": "jwst",
    "operational_context": "jwst_0001.pmap",
    "edit_context": "jwst_0001.pmap",
    "build_context": "jwst_0001.pmap",
    "last_synced": "2026-01-01 00:00:00",
    "bad_files": "",
    "bad_files_list": [],
    "mappings": list(MAPPINGS),
    "force_remote_mode": False,
    "crds_version": {"str": "0"},
}


def _clear_crds_caches() -> None:
    from crds.core import utils

    utils.clear_function_caches()


@pytest.fixture
def crds_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "crds"
    (root / "config" / "jwst").mkdir(parents=True)
    (root / "config" / "jwst" / "server_config").write_text(repr(SERVER_CONFIG))
    (root / "mappings" / "jwst").mkdir(parents=True)
    for name, text in MAPPINGS.items():
        (root / "mappings" / "jwst" / name).write_text(text)
    refdir = root / "references" / "jwst" / "nircam"
    refdir.mkdir(parents=True)
    primary = fits.PrimaryHDU()
    for key, value in {
        "TELESCOP": "JWST",
        "INSTRUME": "NIRCAM",
        "DETECTOR": "NRCA1",
        "REFTYPE": "GAIN",
        "SUBARRAY": "SUB64",
        "SUBSTRT1": 1025,
        "SUBSTRT2": 1,
        "SUBSIZE1": 96,
        "SUBSIZE2": 64,
    }.items():
        primary.header[key] = value
    sci = np.arange(64 * 96, dtype=np.float32).reshape(64, 96)
    fits.HDUList([primary, fits.ImageHDU(sci, name="SCI")]).writeto(refdir / REF_NAME)
    monkeypatch.setenv("CRDS_PATH", str(root))
    monkeypatch.setenv("CRDS_MODE", "local")
    monkeypatch.setenv("CRDS_SERVER_URL", "https://localhost:1")
    monkeypatch.setenv("CRDS_CONTEXT", "jwst_0001.pmap")
    monkeypatch.setenv("CRDS_IGNORE_MAPPING_CHECKSUM", "1")
    monkeypatch.setenv("WEBBFLOW_CACHE", str(tmp_path / "wfcache"))
    _clear_crds_caches()
    yield root
    _clear_crds_caches()


def _exposure(detector: str = "NRCA1"):  # type: ignore[no-untyped-def]
    meta = {"instrument": {"detector": detector}, "subarray": {"xstart": 1025, "ystart": 1, "name": "SUB64"}}
    return make_exposure(np.zeros((1, 2, 64, 96), np.float32), meta=meta, chunks=(32, 48))


def test_resolves_and_opens_from_crds(crds_cache: Path) -> None:
    ds = _exposure()
    resolver = ReferenceResolver()  # CRDS_PATH is set: CRDS is used
    ref = resolver.resolve("gain", ds, None)
    assert ref is not None and ref.label == f"crds://{REF_NAME}"
    assert ref.path == crds_cache / "references" / "jwst" / "nircam" / REF_NAME
    out = resolver.open(ref, ds)
    assert out.attrs["name"] == f"crds://{REF_NAME}"
    np.testing.assert_array_equal(out.sci.values, np.arange(64 * 96, dtype=np.float32).reshape(64, 96))
    assert out.sci.chunks == ((32, 32), (48, 48))


def test_crds_without_a_rule_is_an_error(crds_cache: Path) -> None:
    with pytest.raises(ReferenceFileError, match=r"CRDS found no gain reference.*NRCB2"):
        ReferenceResolver().resolve("gain", _exposure("NRCB2"), None)


def test_override_beats_crds_and_crds_can_be_turned_off(crds_cache: Path) -> None:
    ds = _exposure()
    ref_path = crds_cache / "references" / "jwst" / "nircam" / REF_NAME
    assert ReferenceResolver().resolve("gain", ds, "N/A") is None
    ref = ReferenceResolver().resolve("gain", ds, str(ref_path))
    assert ref is not None and ref.label == str(ref_path)
    ref = ReferenceResolver(use_crds=False).resolve("ipc", ds, None)
    assert ref is not None and ref.label.startswith("webbflow://")
