"""Dask clusters for long runs: this machine, a running scheduler, or a YAML cluster spec.

:func:`open_client` turns a ``--scheduler`` string into a connected
``distributed.Client`` and closes everything it started on exit, also on error:

- ``"local"``: a ``LocalCluster`` sized to the machine (:func:`local_cluster_size`);
- ``"local:N"``: N single-threaded worker processes;
- ``"path/to/cluster.yaml"``: a cluster spec (:func:`load_cluster_spec`), e.g.
  ``dask_jobqueue.SLURMCluster`` or ``dask_kubernetes.operator.KubeCluster``;
- anything else: the address of a running scheduler.

A cluster spec is a YAML mapping::

    class: dask_jobqueue.SLURMCluster   # dotted import path of any class taking keyword arguments
    options: {queue: normal, cores: 8, processes: 8, memory: 32GiB, walltime: "04:00:00"}
    scale: 32                           # workers; or adapt: {minimum: 8, maximum: 64}
    wait_for_workers: 8                 # optional: fail unless 8 workers arrive ...
    wait_timeout: 30 minutes            # ... within this time (default 10 minutes)

See ``docs/clusters.md`` and ``examples/clusters/``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from webbflow.errors import UsageError, suggest

#: Keys a cluster spec may have.
SPEC_KEYS: Final = ("class", "options", "scale", "adapt", "wait_for_workers", "wait_timeout")
#: Keys of ``adapt:`` (passed to ``cluster.adapt``).
ADAPT_KEYS: Final = ("minimum", "maximum", "target_duration", "wait_count", "interval")
#: Seconds :func:`start_cluster` waits for ``wait_for_workers`` workers by default.
DEFAULT_WAIT_TIMEOUT: Final = 600.0
#: A machine-sized local cluster gives each worker at least this much memory (fewer workers
#: rather than workers too small for one full-frame tile pipeline).
MIN_WORKER_MEMORY: Final = 2**30
#: What to install for a cluster class's top-level module.
PIP_HINTS: Final = {
    "dask_jobqueue": "pip install dask-jobqueue  (or pip install 'webbflow[cluster]')",
    "dask_kubernetes": "pip install dask-kubernetes  (or pip install 'webbflow[cluster]')",
    "dask_cloudprovider": "pip install dask-cloudprovider",
    "dask_gateway": "pip install dask-gateway",
    "dask_mpi": "pip install dask-mpi",
}


@dataclass(frozen=True)
class ClusterSpec:
    """A validated cluster spec file (see the module docstring).

    Attributes
    ----------
    path
        The YAML file (named in every error).
    cls
        Dotted import path of the cluster class, e.g. ``"dask_jobqueue.SLURMCluster"``.
    options
        Keyword arguments of the class.
    scale
        Number of workers to ask for (``cluster.scale``), or None.
    adapt
        Keyword arguments of ``cluster.adapt`` (``minimum``, ``maximum`` workers ...), or None.
    wait_for_workers
        Workers to wait for before computing (0: do not wait).
    wait_timeout
        Seconds to wait for them.
    """

    path: Path
    cls: str
    options: dict[str, Any] = field(default_factory=dict)
    scale: int | None = None
    adapt: dict[str, Any] | None = None
    wait_for_workers: int = 0
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT

    def cluster_class(self) -> type:
        """Import :attr:`cls`; a missing package is a one-line error saying what to install."""
        module_name, _, name = self.cls.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            top = module_name.split(".")[0]
            hint = PIP_HINTS.get(top, f"is the package providing {top!r} installed?")
            raise UsageError(
                f"cluster spec {self.path}: class {self.cls!r}: cannot import {module_name!r} ({exc}); {hint}"
            ) from None
        found = getattr(module, name, None)
        if not isinstance(found, type):
            raise UsageError(
                f"cluster spec {self.path}: class {self.cls!r}: {module_name} has no class {name!r}"
            )
        return found

    def make_cluster(self) -> Any:
        """Instantiate the cluster with :attr:`options` (no workers asked for yet)."""
        cls = self.cluster_class()
        try:
            return cls(**self.options)
        except Exception as exc:
            raise UsageError(
                f"cluster spec {self.path}: options: {self.cls}(...) failed: {_one_line(exc)}"
            ) from exc


def load_cluster_spec(path: str | os.PathLike[str]) -> ClusterSpec:
    """Read and validate a YAML cluster spec; the class is imported only when used.

    Raises
    ------
    UsageError
        Missing or unparsable file, unknown key, or a value of the wrong type, in one line
        naming the file and the key.
    """
    path = Path(path)

    def bad(key: str, expected: str) -> UsageError:
        return UsageError(f"cluster spec {path}: {key}: expected {expected}")

    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"cluster spec {path}: file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise UsageError(f"cluster spec {path}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, Mapping):
        raise UsageError(f"cluster spec {path}: expected a mapping with keys {', '.join(SPEC_KEYS)}")
    for key in raw:
        if key not in SPEC_KEYS:
            raise UsageError(
                f"cluster spec {path}: unknown key {key!r}{suggest(str(key), SPEC_KEYS)}; "
                f"expected some of {', '.join(SPEC_KEYS)}"
            )
    cls = raw.get("class")
    if not isinstance(cls, str) or "." not in cls.strip(".") or " " in cls:
        raise bad("class", "a dotted import path such as dask_jobqueue.SLURMCluster")
    options = raw.get("options") or {}
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise bad("options", "a mapping of keyword arguments of " + cls)
    if "scale" in raw and "adapt" in raw:
        raise UsageError(f"cluster spec {path}: scale and adapt: give one of them, not both")
    scale = raw.get("scale")
    if scale is not None and not _count(scale):
        raise bad("scale", "a number of workers (integer >= 0)")
    adapt = raw.get("adapt")
    if adapt is not None:
        if not isinstance(adapt, Mapping):
            raise bad("adapt", "a mapping {minimum: N, maximum: M}")
        for key in adapt:
            if key not in ADAPT_KEYS:
                raise UsageError(
                    f"cluster spec {path}: adapt: unknown key {key!r}{suggest(str(key), ADAPT_KEYS)}; "
                    f"expected some of {', '.join(ADAPT_KEYS)}"
                )
        for key in ("minimum", "maximum"):
            if key in adapt and not _count(adapt[key]):
                raise bad(f"adapt.{key}", "a number of workers (integer >= 0)")
        if adapt.get("minimum", 0) > adapt.get("maximum", adapt.get("minimum", 0)):
            raise bad("adapt", f"minimum <= maximum, got {adapt['minimum']} > {adapt['maximum']}")
    wait = raw.get("wait_for_workers", 0)
    if not _count(wait):
        raise bad("wait_for_workers", "a number of workers (integer >= 0)")
    timeout = raw.get("wait_timeout", DEFAULT_WAIT_TIMEOUT)
    try:
        from dask.utils import parse_timedelta

        seconds = parse_timedelta(timeout, default="seconds")
    except (TypeError, ValueError, KeyError):
        seconds = None
    if seconds is None or seconds <= 0:
        raise bad("wait_timeout", "seconds or a duration such as '30 minutes'")
    return ClusterSpec(
        path=path,
        cls=cls,
        options=dict(options),
        scale=scale,
        adapt=dict(adapt) if adapt is not None else None,
        wait_for_workers=wait,
        wait_timeout=float(seconds),
    )


@contextlib.contextmanager
def start_cluster(spec: ClusterSpec) -> Iterator[Any]:
    """Start the cluster of ``spec``, ask for its workers, and yield a connected client.

    The client and the cluster (and so its batch jobs or pods) are closed on exit, also
    when the enclosed code raises.

    Yields
    ------
    distributed.Client

    Raises
    ------
    UsageError
        The class cannot be imported or rejects the options, or fewer than
        ``wait_for_workers`` workers arrived within ``wait_timeout``.
    """
    from distributed import Client

    with contextlib.ExitStack() as stack:
        cluster = spec.make_cluster()
        stack.callback(cluster.close)
        if spec.scale is not None:
            cluster.scale(spec.scale)
        elif spec.adapt is not None:
            cluster.adapt(**spec.adapt)
        client = stack.enter_context(Client(cluster))
        if spec.wait_for_workers:
            try:
                client.wait_for_workers(spec.wait_for_workers, timeout=spec.wait_timeout)
            except TimeoutError:
                have = len(client.scheduler_info(n_workers=-1).get("workers", {}))
                raise UsageError(
                    f"cluster spec {spec.path}: wait_for_workers: {have} of {spec.wait_for_workers} "
                    f"workers started within {spec.wait_timeout:g} s (see wait_timeout; are the jobs queued?)"
                ) from None
        yield client


def local_cluster_size() -> tuple[int, int]:
    """Workers and memory limit per worker of a local cluster sized to this machine.

    One single-threaded worker per usable core (CPU affinity and cgroup quotas respected),
    sharing the memory available now (``psutil``; 80 % of the total if unknown, and never
    more than a cgroup/rlimit cap), but fewer workers if each would get less than
    :data:`MIN_WORKER_MEMORY`.

    Returns
    -------
    (int, int)
        Number of workers, memory limit per worker in bytes.
    """
    from dask.system import CPU_COUNT
    from distributed.system import MEMORY_LIMIT

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    cores = max(1, min(cores, CPU_COUNT))  # CPU_COUNT also honours cgroup CPU quotas
    try:
        import psutil

        available = int(psutil.virtual_memory().available)
    except ImportError:
        available = int(0.8 * MEMORY_LIMIT)
    available = min(available, MEMORY_LIMIT)
    workers = max(1, min(cores, available // MIN_WORKER_MEMORY))
    return workers, available // workers


@contextlib.contextmanager
def local_cluster(workers: int | None = None, *, dashboard: bool = True) -> Iterator[Any]:
    """A ``LocalCluster`` of single-threaded worker processes and its client.

    Parameters
    ----------
    workers
        Number of workers; None: sized to the machine (:func:`local_cluster_size`).
        Either way the memory available now is shared equally between them.
    dashboard
        Serve the dashboard on a free port.
    """
    from distributed import Client, LocalCluster

    size, memory = local_cluster_size()
    if workers is None:
        workers = size
    else:
        memory = memory * size // workers
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory,
            dashboard_address=":0",  # a free port: several runs may share a machine
            scheduler_kwargs=None if dashboard else {"dashboard": False},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """A client of the running scheduler at ``address`` (``tcp://host:8786``, ``host:8786``)."""
    from distributed import Client

    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise UsageError(
            f"--scheduler {address!r}: cannot connect to a dask scheduler there ({_one_line(exc)})"
        ) from None
    with client:
        yield client


def is_spec_path(spec: str) -> bool:
    """Whether a ``--scheduler`` value names a YAML cluster spec."""
    return spec.lower().endswith((".yaml", ".yml"))


def open_client(spec: str, *, dashboard: bool = True) -> contextlib.AbstractContextManager[Any]:
    """The client for a distributed ``--scheduler`` value (see the module docstring)."""
    if spec == "local":
        return local_cluster(dashboard=dashboard)
    if spec.startswith("local:"):
        n = spec.partition(":")[2]
        if not n.isdigit() or int(n) < 1:
            raise UsageError(f"--scheduler {spec!r}: expected local:N with N a number of workers >= 1")
        return local_cluster(int(n), dashboard=dashboard)
    if is_spec_path(spec):
        return start_cluster(load_cluster_spec(spec))
    return connect(spec)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _one_line(exc: BaseException) -> str:
    """``"Type: message"`` on one line, with the root cause (``Nanny failed to start`` hides it)."""

    def line(e: BaseException) -> str:
        text = " ".join(str(e).split())
        return f"{type(e).__name__}: {text}" if text else type(e).__name__

    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    return line(exc) if root is exc else f"{line(exc)} ({line(root)})"
