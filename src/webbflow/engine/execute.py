"""Compute products: one dask graph for everything asked, written tile by tile.

A *product* is anything with ``prepare() -> list[Delayed]``, ``finish() ->
Path`` and ``abort()`` (FITS files, Zarr stores). :func:`compute_products`
prepares them all, computes every tile write in one graph (so shared
intermediates such as a ramp fit feeding both ``rate`` and ``rateints`` are
computed once), then renames each finished file into place. On any failure the
temporary files are removed and no product is left half written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import dask
from dask.delayed import Delayed

from webbflow.errors import StepError, WebbflowError

log = logging.getLogger("webbflow")


class Product(Protocol):
    """Something :func:`compute_products` can write."""

    path: Path

    def prepare(self) -> list[Delayed]: ...

    def finish(self) -> Path: ...

    def abort(self) -> None: ...


@contextlib.contextmanager
def scheduler(spec: str | None = None, *, progress: bool = True) -> Iterator[Any]:
    """Run the enclosed computations on the scheduler named by ``spec``.

    Parameters
    ----------
    spec
        ``None``/``"threads"``: local threads, one per core (default; kernels
        release the GIL). ``"sync"``: one thread, for debugging.
        ``"local"``: a ``distributed.LocalCluster`` sized to the machine (one
        single-threaded worker process per core, the available memory shared
        between them). ``"local:N"``: N such workers. A path ending in
        ``.yaml``/``.yml``: a cluster spec (SLURM, PBS, Kubernetes, ...; see
        :mod:`webbflow.engine.clusters`). Anything else: the address of a running
        ``distributed`` scheduler (also taken from ``DASK_SCHEDULER_ADDRESS``).
    progress
        Print the dashboard link (and serve it, for local clusters).

    Yields
    ------
    distributed.Client or None
        None for the threaded schedulers. Any cluster started here is closed on
        exit, also on error.
    """
    spec = spec or os.environ.get("DASK_SCHEDULER_ADDRESS") or "threads"
    if spec in ("threads", "sync", "synchronous"):
        name = "threads" if spec == "threads" else "synchronous"
        with dask.config.set(scheduler=name):
            yield None
        return
    from webbflow.engine.clusters import open_client

    with open_client(spec, dashboard=progress) as client:
        _announce(client, progress)
        yield client


def _announce(client: Any, progress: bool) -> None:
    if progress and getattr(client, "dashboard_link", None):
        print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)


def compute_products(products: Sequence[Product], *, client: Any = None, progress: bool = True) -> list[Path]:
    """Write ``products`` in one computation; return their paths.

    Raises
    ------
    WebbflowError
        Any error while preparing or computing; no partial file remains.
    """
    prepared: list[Product] = []
    tasks: list[Delayed] = []
    start = time.perf_counter()
    try:
        for product in products:
            tasks += product.prepare()
            prepared.append(product)
        _run(tasks, client, progress)
        paths = [product.finish() for product in prepared]
    except BaseException as exc:
        for product in prepared:
            product.abort()
        if isinstance(exc, WebbflowError | KeyboardInterrupt):
            raise
        raise StepError(f"computing {', '.join(p.path.name for p in products)} failed: {exc!r}") from exc
    log.info("wrote %d product(s) in %.1f s", len(paths), time.perf_counter() - start)
    return paths


def _run(tasks: list[Delayed], client: Any, progress: bool) -> None:
    if not tasks:
        return
    if client is not None:
        from distributed import progress as dprogress

        futures = client.compute(tasks)
        if progress and sys.stderr.isatty():
            dprogress(futures)
        client.gather(futures)
        return
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar(minimum=2.0, out=sys.stderr):
            dask.compute(*tasks)
    else:
        dask.compute(*tasks)
