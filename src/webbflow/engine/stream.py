"""Stream many products through one ``distributed`` computation, each finished as it completes.

:func:`run_tasks` prepares every product (headers and empty temporary files), ties each
product's tile writes into one small *finalizer* task (``dask.graph_manipulation.checkpoint``,
which computes to ``None``), and submits all finalizers in a single ``client.compute`` call,
so tiles shared by several products (a ramp fit feeding ``rate`` and ``rateints``) are
computed once. Products are renamed into place and marked in the :class:`~webbflow.engine.
ledger.Ledger` one by one, as their finalizers complete; nothing but ``None`` comes back to
the client, so its memory does not grow with the program.

Guarantees, whenever the run stops:

- a product's final name only ever holds a complete file: tiles are written into a hidden
  temporary (``.<name>.<8 hex>.partial``) renamed into place after its last tile;
- a failing product (bad input in ``prepare``, an exception in one of its tiles, a task
  that killed its workers) is aborted, its temporary removed, and recorded as a
  :class:`Failure`; the other products go on;
- a worker killed mid-run loses nothing: the scheduler recomputes its tasks elsewhere and
  the tile writes are idempotent (the same bytes at the same offsets of the temporary);
- Ctrl-C aborts every unfinished product (no temporary left) and re-raises;
- a killed client (``kill -9``) can leave temporaries, never a corrupt product:
  :meth:`Ledger.clean_stale` removes them and the rerun redoes exactly the unmarked products.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dask.delayed import Delayed

from webbflow.engine.execute import Product
from webbflow.engine.ledger import Ledger

log = logging.getLogger("webbflow")


@dataclass
class Task:
    """One product to write.

    Parameters
    ----------
    product
        Anything following :class:`webbflow.engine.execute.Product` (``prepare``/``finish``/
        ``abort``, ``path``). To redo a product whose file exists but is not complete in the
        ledger, build it with ``overwrite=True``; otherwise its ``prepare`` refuses (a failure).
    group
        What progress and the failure summary are grouped by (e.g. the exposure root).
    recipe
        A hash of everything that determines the product's bytes (inputs, parameters, version).
    """

    product: Product
    group: str
    recipe: str


@dataclass(frozen=True)
class Failure:
    """A product that could not be written, and why (one line)."""

    group: str
    path: Path
    message: str


@dataclass
class Report:
    """What :func:`run_tasks` did: products written, skipped as complete, and failed."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no product failed."""
        return not self.failed

    def summary(self) -> str:
        """Counts, then one line per failure: ``FAILED <group>: <file>: <reason>``."""
        lines = [f"{len(self.written)} written, {len(self.skipped)} skipped, {len(self.failed)} failed"]
        lines += [f"  FAILED {f.group}: {f.path.name}: {f.message}" for f in self.failed]
        return "\n".join(lines)


def one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line (no traceback)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Progress:
    """Per-product and per-group progress lines on stderr, and the report they add up to."""

    def __init__(self, tasks: Sequence[Task], report: Report, show: bool) -> None:
        self.report, self.show, self.start = report, show, time.perf_counter()
        self.total = len(tasks)
        self.left = Counter(t.group for t in tasks)
        self.failed: Counter[str] = Counter()
        self.done = 0

    def say(self, text: str) -> None:
        if self.show:
            print(text, file=sys.stderr, flush=True)

    def written(self, task: Task) -> None:
        self.report.written.append(task.product.path)
        self._count(task, "")

    def failure(self, task: Task, exc: BaseException) -> None:
        message = one_line(exc)
        self.report.failed.append(Failure(task.group, task.product.path, message))
        self.failed[task.group] += 1
        log.debug("%s failed", task.product.path.name, exc_info=exc)
        self._count(task, f"  FAILED: {message}")

    def _count(self, task: Task, note: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        self.say(f"[{self.done}/{self.total}] {task.product.path.name}  {elapsed:.1f} s{note}")
        self.left[task.group] -= 1
        if self.left[task.group] == 0:
            bad = self.failed[task.group]
            state = f"{bad} product(s) failed" if bad else "done"
            self.say(f"group {task.group}: {state}  {elapsed:.1f} s")


def run_tasks(
    tasks: Sequence[Task],
    client: Any,
    *,
    ledger: Ledger | None,
    progress: bool = True,
    window: int | None = None,
) -> Report:
    """Write ``tasks``' products on ``client``, each finished as soon as its own tiles are.

    Parameters
    ----------
    tasks
        The products to write. Those already complete in ``ledger`` are skipped.
    client
        A ``distributed.Client``.
    ledger
        Completion markers: complete products are skipped, written ones are marked.
        ``None``: write everything, mark nothing.
    progress
        Print ``[k/N] <file>  <elapsed> s`` per product and a line per finished group.
    window
        At most this many groups (exposures) in flight: the next group's graph is submitted
        when one finishes, so the scheduler's graph and the workers' memory do not grow with
        the number of groups. ``None``: every group at once. The products of one group are
        always submitted together, so the tiles they share are computed once.

    Returns
    -------
    Report
        Paths written and skipped, and a :class:`Failure` per product that failed.

    Raises
    ------
    KeyboardInterrupt
        After aborting every unfinished product (no temporary is left).
    """
    from distributed import as_completed

    report = Report()
    todo: list[Task] = []
    for task in tasks:
        if ledger is not None and ledger.complete(task.product.path, task.recipe):
            report.skipped.append(task.product.path)
        else:
            todo.append(task)
    show = _Progress(todo, report, progress)
    if report.skipped:
        show.say(f"{len(report.skipped)} product(s) already complete, skipped")
    groups: dict[str, list[Task]] = {}
    for task in todo:
        groups.setdefault(task.group, []).append(task)
    queue = list(groups.values())
    limit = len(queue) if window is None else max(1, window)
    pending: dict[Any, Task] = {}  # future -> task, until the product is finished or aborted
    live: Counter[str] = Counter()  # futures in flight per group
    flights = as_completed([], with_results=False)
    try:
        while queue and len(live) < limit:
            _submit(queue.pop(0), client, ledger, show, pending, live, flights)
        for future in flights:
            task = pending[future]
            _settle(future, task, ledger, show)
            del pending[future]
            future.release()
            live[task.group] -= 1
            if live[task.group] == 0:
                del live[task.group]
                while queue and len(live) < limit:
                    _submit(queue.pop(0), client, ledger, show, pending, live, flights)
    except BaseException:
        with contextlib.suppress(Exception):  # a lost scheduler must not hide the first error
            client.cancel(list(pending))
        for task in pending.values():
            task.product.abort()
        raise
    return report


def _submit(
    group: list[Task],
    client: Any,
    ledger: Ledger | None,
    show: _Progress,
    pending: dict[Any, Task],
    live: Counter[str],
    flights: Any,
) -> None:
    """Prepare one group's products and submit their writes in one graph."""
    from dask.graph_manipulation import checkpoint

    prepared: list[Task] = []
    finalizers: list[Delayed] = []
    try:
        for task in group:
            if ledger is not None:
                ledger.forget(task.product.path)
            try:
                writes = task.product.prepare()
            except Exception as exc:  # bad input for this product: record it, go on
                task.product.abort()
                show.failure(task, exc)
                continue
            prepared.append(task)
            finalizers.append(checkpoint(*writes))
        futures = client.compute(finalizers) if finalizers else []
    except BaseException:
        for task in prepared:
            task.product.abort()
        raise
    for future, task in zip(futures, prepared, strict=True):
        pending[future] = task
        live[task.group] += 1
    flights.update(futures)


def _settle(future: Any, task: Task, ledger: Ledger | None, show: _Progress) -> None:
    """Finish (rename, mark) or abort the product of a completed finalizer."""
    try:
        if future.status != "finished":
            exc = future.exception() if future.status == "error" else None
            raise exc or RuntimeError(f"computation {future.status}")
        path = task.product.finish()
        if ledger is not None:
            ledger.mark(path, task.recipe)
    except Exception as exc:
        task.product.abort()
        show.failure(task, exc)
    else:
        show.written(task)
