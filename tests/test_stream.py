"""Streaming product execution: fault isolation, resume from the ledger, killed workers."""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
from astropy.io import fits

from webbflow.engine.ledger import Ledger
from webbflow.engine.stream import Task, run_tasks
from webbflow.io.fits_writer import FitsProduct, ImageExtension
from webbflow.io.products import fits_product
from webbflow.testing import make_exposure

distributed = pytest.importorskip("distributed")

# worker processes cannot import this module from tests/: send its functions by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

CARDS = [("ORIGIN", "webbflow-test", "")]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with distributed.Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None) as c:
        yield c


def _ramp(seed: int, shape: tuple[int, int, int, int] = (1, 3, 64, 64)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 60000, shape).astype(np.float32)


def _uncal(tmp_path: Path, name: str, seed: int, *, overwrite: bool = False) -> FitsProduct:
    ds = make_exposure(_ramp(seed), chunks=16)
    return fits_product(ds, tmp_path / f"{name}_uncal.fits", "uncal", overwrite=overwrite)


def _explode(block: np.ndarray, block_info: Any = None) -> np.ndarray:
    if block_info[None]["chunk-location"] == (2, 1):
        raise ValueError("bad pixel table in tile (2, 1)")
    return block


def _leftovers(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*.partial"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_failed_group_does_not_stop_the_others(
    client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = [_uncal(tmp_path, "jw01_good_a", 1), _uncal(tmp_path, "jw01_good_b", 2)]
    bad_data = da.ones((64, 64), dtype=np.float32, chunks=16).map_blocks(_explode, dtype=np.float32)
    bad = FitsProduct(tmp_path / "jw01_bad_rate.fits", CARDS, [ImageExtension("SCI", bad_data)])
    tasks = [Task(good[0], "good", "r"), Task(bad, "bad", "r"), Task(good[1], "good", "r")]
    ledger = Ledger(tmp_path)

    report = run_tasks(tasks, client, ledger=ledger)

    assert sorted(report.written) == sorted(p.path for p in good)
    assert [(f.group, f.path.name) for f in report.failed] == [("bad", "jw01_bad_rate.fits")]
    assert report.failed[0].message == "ValueError: bad pixel table in tile (2, 1)"
    assert not bad.path.exists()
    assert _leftovers(tmp_path) == []
    for seed, product in enumerate(good, start=1):
        assert ledger.complete(product.path, "r")
        expected = np.clip(np.round(_ramp(seed)), 0, 65535).astype(np.uint16)
        np.testing.assert_array_equal(fits.getdata(product.path, "SCI"), expected)
    summary = report.summary()
    assert summary.splitlines()[0] == "2 written, 0 skipped, 1 failed"
    assert "FAILED bad: jw01_bad_rate.fits: ValueError: bad pixel table" in summary
    err = capsys.readouterr().err
    assert "[3/3]" in err
    assert "group good: done" in err
    assert "group bad: 1 product(s) failed" in err


def test_prepare_error_is_one_failure(
    client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # complex data cannot go to FITS: prepare() raises after it created the temporary
    odd = FitsProduct(
        tmp_path / "odd.fits", CARDS, [ImageExtension("SCI", da.zeros((8, 8), dtype=np.complex64))]
    )
    taken = tmp_path / "taken_uncal.fits"
    taken.write_bytes(b"someone else's file")
    tasks = [
        Task(odd, "odd", "r"),
        Task(_uncal(tmp_path, "taken", 3), "taken", "r"),
        Task(_uncal(tmp_path, "fine", 4), "fine", "r"),
    ]

    report = run_tasks(tasks, client, ledger=Ledger(tmp_path), progress=False)

    assert report.written == [tmp_path / "fine_uncal.fits"]
    messages = {f.group: f.message for f in report.failed}
    assert messages["odd"].startswith("TypeError: extension SCI: cannot write dtype complex64")
    assert messages["taken"].startswith("OutputError: ")
    assert taken.read_bytes() == b"someone else's file"
    assert _leftovers(tmp_path) == []
    assert capsys.readouterr().err == ""  # progress=False: silent


def test_zarr_store_is_written_and_marked(client: Any, tmp_path: Path) -> None:
    from webbflow.io.zarr_store import ZarrProduct, open_zarr

    ds = make_exposure(_ramp(5), chunks=32)
    ledger = Ledger(tmp_path)
    task = Task(ZarrProduct(ds, tmp_path / "jw01_ramp.zarr"), "jw01", "z")
    report = run_tasks([task], client, ledger=ledger, progress=False)
    assert report.written == [tmp_path / "jw01_ramp.zarr"]
    assert ledger.complete(tmp_path / "jw01_ramp.zarr", "z")
    np.testing.assert_array_equal(open_zarr(tmp_path / "jw01_ramp.zarr")["sci"].values, _ramp(5))
    assert _leftovers(tmp_path) == []


def _counted(block: np.ndarray, ticks: str = "", block_info: Any = None) -> np.ndarray:
    j, k = block_info[None]["chunk-location"]
    Path(ticks, f"{j}-{k}-{time.monotonic_ns()}").touch()
    return block * 2


def test_shared_tiles_are_computed_once(client: Any, tmp_path: Path) -> None:
    base = da.arange(64 * 64, dtype=np.float32, chunks=256).reshape(64, 64).rechunk(16)
    shared = base.map_blocks(_counted, dtype=np.float32, ticks=str(tmp_path))
    products = [
        FitsProduct(tmp_path / "a.fits", CARDS, [ImageExtension("SCI", shared)]),
        FitsProduct(tmp_path / "b.fits", CARDS, [ImageExtension("SCI", shared + 1)]),
    ]
    report = run_tasks([Task(p, "g", "r") for p in products], client, ledger=None, progress=False)

    assert report.ok and len(report.written) == 2
    tiles = [p.name.rsplit("-", 1)[0] for p in tmp_path.iterdir() if not p.suffix]
    assert len(tiles) == 16 and len(set(tiles)) == 16  # each tile once, for both products
    expected = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) * 2
    np.testing.assert_array_equal(fits.getdata(tmp_path / "a.fits", "SCI"), expected)
    np.testing.assert_array_equal(fits.getdata(tmp_path / "b.fits", "SCI"), expected + 1)


def _three(tmp_path: Path) -> list[Task]:
    return [Task(_uncal(tmp_path, f"jw01_{i}", i, overwrite=True), f"jw01_{i}", f"r{i}") for i in range(3)]


def test_rerun_skips_complete_and_redoes_tampered(client: Any, tmp_path: Path) -> None:
    first = run_tasks(_three(tmp_path), client, ledger=Ledger(tmp_path), progress=False)
    assert (len(first.written), len(first.skipped)) == (3, 0)
    paths = sorted(first.written)
    sha = {p: _sha(p) for p in paths}
    mtime = {p: p.stat().st_mtime_ns for p in paths}

    again = run_tasks(_three(tmp_path), client, ledger=Ledger(tmp_path), progress=False)
    assert (len(again.written), len(again.skipped), len(again.failed)) == (0, 3, 0)
    assert again.summary() == "0 written, 3 skipped, 0 failed"
    assert all(p.stat().st_mtime_ns == mtime[p] for p in paths)

    # one byte of the SCI data changed, same size: only a checksum sees it
    tampered = paths[1]
    raw = bytearray(tampered.read_bytes())
    raw[2880 * 3 + 100] ^= 0x01
    tampered.write_bytes(bytes(raw))
    assert run_tasks(_three(tmp_path), client, ledger=Ledger(tmp_path, verify="size"), progress=False).skipped
    redo = run_tasks(_three(tmp_path), client, ledger=Ledger(tmp_path), progress=False)
    assert redo.written == [tampered]
    assert len(redo.skipped) == 2
    assert _sha(tampered) != sha[tampered]  # rewritten (a new DATE card), others untouched:
    assert all(_sha(p) == sha[p] for p in paths if p != tampered)
    data = fits.getdata(tampered, "SCI")
    np.testing.assert_array_equal(data, np.clip(np.round(_ramp(1)), 0, 65535).astype(np.uint16))

    # truncation: size verification is enough
    truncated = paths[2]
    with truncated.open("r+b") as f:
        f.truncate(truncated.stat().st_size - 2880)
    redo = run_tasks(_three(tmp_path), client, ledger=Ledger(tmp_path, verify="size"), progress=False)
    assert redo.written == [truncated]
    assert fits.getdata(truncated, "SCI").shape == (1, 3, 64, 64)


def test_clean_stale_after_a_killed_run(client: Any, tmp_path: Path) -> None:
    done = run_tasks(_three(tmp_path), client, ledger=Ledger(tmp_path), progress=False).written
    # a run killed after prepare(): headers written, tiles not, no rename
    killed = _uncal(tmp_path, "jw01_killed", 7)
    killed.prepare()
    assert killed.tmp.exists()

    removed = Ledger(tmp_path).clean_stale()

    assert removed == [killed.tmp]
    assert _leftovers(tmp_path) == []
    assert all(p.exists() and Ledger(tmp_path).complete(p, f"r{i}") for i, p in enumerate(sorted(done)))


class _Interrupting:
    """A product whose finish() is interrupted by Ctrl-C."""

    def __init__(self, inner: FitsProduct) -> None:
        self.inner, self.path = inner, inner.path

    def prepare(self) -> list[Any]:
        return self.inner.prepare()

    def finish(self) -> Path:
        raise KeyboardInterrupt

    def abort(self) -> None:
        self.inner.abort()


def _slow(block: np.ndarray, delay: float = 0.05, ticks: str = "") -> np.ndarray:
    time.sleep(delay)
    if ticks:
        Path(ticks, f"{os.getpid()}-{time.monotonic_ns()}").touch()
    return block


def test_keyboard_interrupt_aborts_everything(client: Any, tmp_path: Path) -> None:
    # one tile each: the scheduler may queue a second task behind a running one on the same worker
    quick = _Interrupting(fits_product(make_exposure(_ramp(1)), tmp_path / "quick_uncal.fits", "uncal"))
    # one 2 s tile: still running when the quick product's finish() is interrupted
    slow_data = da.zeros((64, 64), dtype=np.float32, chunks=64).map_blocks(_slow, dtype=np.float32, delay=2.0)
    slow = FitsProduct(tmp_path / "slow.fits", CARDS, [ImageExtension("SCI", slow_data)])
    with pytest.raises(KeyboardInterrupt):
        run_tasks([Task(quick, "q", "r"), Task(slow, "s", "r")], client, ledger=Ledger(tmp_path))
    assert _leftovers(tmp_path) == []
    assert not slow.path.exists() and not quick.path.exists()


def _killable_products(folder: Path, ticks: Path, delay: float = 0.05) -> list[Task]:
    """4 products over 2 slow (``delay`` s/tile) 32-tile arrays; pairs share their tiles."""
    tasks = []
    for k in range(2):
        base = da.arange(256 * 128, dtype=np.float32, chunks=4096).reshape(256, 128).rechunk(32) + k
        slow = base.map_blocks(_slow, dtype=np.float32, delay=delay, ticks=str(ticks))
        for name, data in (("sci", slow), ("sq", (slow**2).astype(np.float64))):
            images = [ImageExtension("SCI", data), ImageExtension("DQ", (slow > 100).astype(np.uint8))]
            product = FitsProduct(folder / f"jw0{k}_{name}.fits", CARDS, images)
            tasks.append(Task(product, f"jw0{k}", f"r{k}{name}"))
    return tasks


@pytest.mark.slow
def test_killed_worker_loses_nothing(tmp_path: Path) -> None:
    reference, killed, ticks = tmp_path / "reference", tmp_path / "killed", tmp_path / "ticks"
    for folder in (reference, killed, ticks):
        folder.mkdir()
    ref = [t.product for t in _killable_products(reference, tmp_path, delay=0)]
    dask.compute(*[w for p in ref for w in p.prepare()], scheduler="threads")
    expected = [p.finish() for p in ref]
    with (
        distributed.LocalCluster(
            n_workers=3, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        killed_at: dict[str, Any] = {}

        def kill_when_started() -> None:  # after 1/4 of the slow tiles: kill the worker holding most
            deadline = time.monotonic() + 60
            while len(list(ticks.iterdir())) < 16 and time.monotonic() < deadline:
                time.sleep(0.01)
            held = client.has_what()
            killed_at.update(
                pid=pids[max(held, key=lambda a: len(held[a]))], ticks=len(list(ticks.iterdir()))
            )
            os.kill(killed_at["pid"], signal.SIGKILL)

        killer = threading.Thread(target=kill_when_started)
        killer.start()
        report = run_tasks(_killable_products(killed, ticks), client, ledger=Ledger(killed), progress=False)
        killer.join()

        assert 16 <= killed_at["ticks"] < 64  # killed mid-run
        assert killed_at["pid"] not in client.run(os.getpid).values()
        assert len(list(ticks.iterdir())) >= 64  # every slow tile ran (some twice)
    assert report.summary() == "4 written, 0 skipped, 0 failed"
    assert _leftovers(killed) == []
    for path in expected:
        again = killed / path.name
        with fits.open(path) as a, fits.open(again) as b:
            assert [h.name for h in a] == [h.name for h in b]
            for ha, hb in zip(a[1:], b[1:], strict=True):
                np.testing.assert_array_equal(ha.data, hb.data)
        assert _sha(again) == _sha(path)  # no DATE card: the whole file is identical
    assert all(Ledger(killed).complete(t.product.path, t.recipe) for t in _killable_products(killed, ticks))


def _stamped(block: np.ndarray, ticks: str = "", group: str = "") -> np.ndarray:
    start = time.monotonic_ns()
    time.sleep(0.01)
    Path(ticks, f"{group}-{start}-{time.monotonic_ns()}").touch()
    return block


def test_window_bounds_the_groups_in_flight(client: Any, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks"
    ticks.mkdir()
    tasks = []
    for g in range(6):
        data = da.full((32, 32), g, dtype=np.float32, chunks=8)
        meta = np.array((), dtype=np.float32)  # no meta call: it would stamp at build time
        data = data.map_blocks(_stamped, meta=meta, ticks=str(ticks), group=f"g{g}")
        product = FitsProduct(tmp_path / f"g{g}.fits", CARDS, [ImageExtension("SCI", data)])
        tasks.append(Task(product, f"g{g}", "r"))
    report = run_tasks(tasks, client, ledger=None, progress=False, window=2)

    assert report.ok and len(report.written) == 6
    for g in range(6):
        np.testing.assert_array_equal(fits.getdata(tmp_path / f"g{g}.fits", "SCI"), np.full((32, 32), g))
    spans: dict[str, list[int]] = {}
    for tick in ticks.iterdir():
        group, start, end = tick.name.split("-")
        span = spans.setdefault(group, [int(start), int(end)])
        span[0], span[1] = min(span[0], int(start)), max(span[1], int(end))
    assert len(spans) == 6
    # at every group's start, at most 2 groups (itself included) are running
    for group, (start, _) in spans.items():
        running = [g for g, (s, e) in spans.items() if s <= start <= e]
        assert len(running) <= 2, (group, running)
