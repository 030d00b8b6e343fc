"""Completion markers: a product is complete only while it matches what was marked."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from webbflow import __version__
from webbflow.engine.ledger import Ledger, checksum
from webbflow.io.atomic import temporary_name


def _product(tmp_path: Path, name: str = "jw01_nrca1_rate.fits", size: int = 10_000) -> Path:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def _flip_one_byte(path: Path, at: int = 1234) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_marker_records_size_and_sha256(tmp_path: Path) -> None:
    path = _product(tmp_path)
    ledger = Ledger(tmp_path)
    assert not ledger.complete(path, "r1")
    ledger.mark(path, "r1")
    done = json.loads((tmp_path / ".webbflow" / "done" / f"{path.name}.json").read_text())
    assert done["name"] == path.name
    assert done["recipe"] == "r1"
    assert done["size"] == 10_000
    assert done["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert done["version"] == __version__
    assert done["time"]
    assert ledger.complete(path, "r1")
    # the marker was written atomically: no temporary beside it
    assert [p.name for p in ledger.folder.iterdir()] == [f"{path.name}.json"]


def test_other_recipe_or_missing_file_is_not_complete(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _product(tmp_path)
    ledger = Ledger(tmp_path)
    ledger.mark(path, "r1")
    with caplog.at_level(logging.DEBUG, logger="webbflow"):
        assert not ledger.complete(path, "r2")
    assert "another recipe" in caplog.text
    path.unlink()
    assert not ledger.complete(path, "r1")


def test_one_changed_byte_is_caught_by_checksum_not_by_size(tmp_path: Path) -> None:
    path = _product(tmp_path)
    Ledger(tmp_path).mark(path, "r")
    _flip_one_byte(path)
    assert path.stat().st_size == 10_000
    assert not Ledger(tmp_path, verify="checksum").complete(path, "r")
    assert Ledger(tmp_path, verify="size").complete(path, "r")


def test_size_verification_catches_truncation(tmp_path: Path) -> None:
    path = _product(tmp_path)
    ledger = Ledger(tmp_path, verify="size")
    ledger.mark(path, "r")
    with path.open("r+b") as f:
        f.truncate(9_000)
    assert not ledger.complete(path, "r")


def test_marker_of_another_version_is_not_complete(tmp_path: Path) -> None:
    path = _product(tmp_path)
    ledger = Ledger(tmp_path)
    ledger.mark(path, "r")
    marker = ledger.marker(path)
    done = json.loads(marker.read_text())
    marker.write_text(json.dumps({**done, "version": "0.0.0"}))
    assert not ledger.complete(path, "r")
    marker.write_text("{not json")
    assert not ledger.complete(path, "r")


def test_zarr_store_directory_is_hashed_by_paths_and_bytes(tmp_path: Path) -> None:
    store = tmp_path / "jw01_nrca1_ramp.zarr"
    (store / "sci" / "c").mkdir(parents=True)
    (store / "zarr.json").write_text('{"zarr_format": 3}')
    (store / "sci" / "c" / "0").write_bytes(b"\x01" * 100)
    (store / "sci" / "c" / "1").write_bytes(b"\x02" * 100)
    size, sha = checksum(store)
    assert size == 18 + 200
    ledger = Ledger(tmp_path)
    ledger.mark(store, "r")
    assert ledger.complete(store, "r")
    # same bytes under another name: a different store
    (store / "sci" / "c" / "1").rename(store / "sci" / "c" / "2")
    assert checksum(store)[0] == size
    assert checksum(store)[1] != sha
    assert not ledger.complete(store, "r")


def test_large_file_hash_matches_hashlib(tmp_path: Path) -> None:
    # more than one 8 MiB block
    path = _product(tmp_path, size=(8 << 20) + 12345)
    assert checksum(path) == ((8 << 20) + 12345, hashlib.sha256(path.read_bytes()).hexdigest())


def test_clean_stale_removes_only_temporaries(tmp_path: Path) -> None:
    real = _product(tmp_path, "jw01_nrca1_uncal.fits")
    sub = tmp_path / "stage2"
    sub.mkdir()
    real2 = _product(sub, "jw01_nrca1_cal.fits")
    ledger = Ledger(tmp_path)
    ledger.mark(real, "r")
    stale_file = temporary_name(tmp_path / "jw01_nrca1_rate.fits")
    stale_file.write_bytes(b"half")
    stale_store = temporary_name(sub / "jw01_nrca1_ramp.zarr")
    (stale_store / "sci").mkdir(parents=True)
    (stale_store / "sci" / "0").write_bytes(b"x")
    stale_marker = temporary_name(ledger.marker(real2))
    stale_marker.write_text("{")
    lookalikes = [tmp_path / ".hidden.fits", tmp_path / "a.partial", tmp_path / ".x.fits.nothex12.partial"]
    for p in lookalikes:
        p.write_bytes(b"keep")

    removed = ledger.clean_stale()

    assert set(removed) == {stale_file, stale_store, stale_marker}
    assert not stale_file.exists() and not stale_store.exists() and not stale_marker.exists()
    assert real.exists() and real2.exists() and all(p.exists() for p in lookalikes)
    assert ledger.complete(real, "r")
    assert ledger.clean_stale() == []


def test_bad_verify_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="verify"):
        Ledger(tmp_path, verify="md5")  # type: ignore[arg-type]
