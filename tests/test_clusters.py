"""Clusters: machine-sized local clusters, YAML cluster specs (SLURM, PBS, Kubernetes), errors."""

from __future__ import annotations

import os
import signal
import stat
import time
from dataclasses import replace
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from webbflow.engine import clusters
from webbflow.engine.clusters import (
    MIN_WORKER_MEMORY,
    load_cluster_spec,
    local_cluster_size,
    start_cluster,
)
from webbflow.engine.execute import scheduler
from webbflow.errors import UsageError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "clusters"
GIB = 2**30


def _sum_of_squares(client) -> float:
    """A small computation spread over several chunks; its exact value is n(n-1)(2n-1)/6."""
    x = da.arange(10_000, chunks=1_000, dtype=np.float64)
    return float(client.compute((x**2).sum()).result())


EXPECTED = 9999 * 10_000 * 19_999 / 6


def _write(tmp_path: Path, text: str, name: str = "cluster.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- local sizing -------------------------------------------------------------------------


def test_local_cluster_size_this_machine():
    import psutil

    workers, memory = local_cluster_size()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= workers <= cores
    # the memory handed out is what is free now (allow for other processes moving it a little)
    assert workers * memory <= psutil.virtual_memory().available * 1.05
    assert memory >= MIN_WORKER_MEMORY or workers == 1


@pytest.mark.parametrize(
    ("cores", "available", "workers", "memory"),
    [
        (64, 128 * GIB, 64, 2 * GIB),  # one worker per core, memory shared
        (64, 3 * GIB, 3, GIB),  # too little memory for 64 workers: fewer, at least 1 GiB each
        (4, GIB // 2, 1, GIB // 2),  # never fewer than one worker
    ],
)
def test_local_cluster_size_rules(monkeypatch, cores, available, workers, memory):
    import dask.system
    import distributed.system
    import psutil

    class _Memory:
        def __init__(self, available: int) -> None:
            self.available = available

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(dask.system, "CPU_COUNT", cores)
    monkeypatch.setattr(distributed.system, "MEMORY_LIMIT", 256 * GIB)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: _Memory(available))
    assert local_cluster_size() == (workers, memory)


def test_local_cluster_size_respects_cgroup_limit(monkeypatch):
    import dask.system
    import distributed.system
    import psutil

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(dask.system, "CPU_COUNT", 2)  # a CPU quota of 2 cores
    monkeypatch.setattr(distributed.system, "MEMORY_LIMIT", 8 * GIB)  # a container limit
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("M", (), {"available": 100 * GIB})())
    assert local_cluster_size() == (2, 4 * GIB)


# --- local clusters run -------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["local", "local:2"])
def test_scheduler_local_runs_and_closes(spec):
    size, per_worker = local_cluster_size()
    workers = size if spec == "local" else 2
    with scheduler(spec, progress=False) as client:
        info = client.scheduler_info(n_workers=-1)["workers"].values()
        assert [w["nthreads"] for w in info] == [1] * workers
        for w in info:  # the free memory shared between the workers
            assert w["memory_limit"] == pytest.approx(per_worker * size / workers, rel=0.2)
        assert _sum_of_squares(client) == EXPECTED
        cluster = client.cluster
    assert client.status == "closed"
    assert cluster.status.name == "closed"


def test_scheduler_yaml_local_cluster_example_runs():
    with scheduler(str(EXAMPLES / "local.yaml"), progress=False) as client:
        info = list(client.scheduler_info(n_workers=-1)["workers"].values())
        assert len(info) == 2
        assert all(w["nthreads"] == 1 and w["memory_limit"] == 4 * GIB for w in info)
        assert _sum_of_squares(client) == EXPECTED


def test_yaml_adapt_and_wait_for_workers(tmp_path):
    spec = _write(
        tmp_path,
        "class: distributed.LocalCluster\n"
        "options: {n_workers: 0, threads_per_worker: 1, processes: false, dashboard_address: ':0'}\n"
        "adapt: {minimum: 1, maximum: 2}\n"
        "wait_for_workers: 1\n"
        "wait_timeout: 30 s\n",
    )
    with scheduler(str(spec), progress=False) as client:
        assert len(client.scheduler_info()["workers"]) >= 1
        assert _sum_of_squares(client) == EXPECTED


def test_cluster_closed_when_the_run_fails(tmp_path):
    spec = _write(
        tmp_path,
        "class: distributed.LocalCluster\n"
        "options: {n_workers: 1, processes: false, dashboard_address: ':0'}\nscale: 1\n",
    )
    with pytest.raises(RuntimeError, match="boom"), scheduler(str(spec), progress=False) as client:
        cluster = client.cluster
        raise RuntimeError("boom")
    assert client.status == "closed"
    assert cluster.status.name == "closed"


def test_wait_for_workers_timeout_is_one_line_and_closes(tmp_path):
    spec = _write(
        tmp_path,
        "class: distributed.LocalCluster\n"
        "options: {n_workers: 0, processes: false, dashboard_address: ':0'}\n"
        "wait_for_workers: 1\nwait_timeout: 1\n",
    )
    with pytest.raises(UsageError) as err, start_cluster(load_cluster_spec(spec)):
        pass
    message = str(err.value)
    assert "\n" not in message
    assert str(spec) in message
    assert "wait_for_workers: 0 of 1 workers" in message


def test_scheduler_strings(monkeypatch):
    with scheduler(None, progress=False) as client:
        assert client is None
    with scheduler("sync", progress=False) as client:
        assert client is None
    for bad in ("local:0", "local:x", "local:-2"):
        with pytest.raises(UsageError, match="local:N"):
            clusters.open_client(bad)
    # "localhost:8786" is an address, not local:N
    seen = []
    monkeypatch.setattr(clusters, "connect", lambda address: seen.append(address))
    clusters.open_client("localhost:8786")
    clusters.open_client("tcp://10.0.0.1:8786")
    assert seen == ["localhost:8786", "tcp://10.0.0.1:8786"]


# --- SLURM / PBS recipes --------------------------------------------------------------------


def test_slurm_example_job_script(monkeypatch, tmp_path):
    pytest.importorskip("dask_jobqueue")
    monkeypatch.chdir(tmp_path)  # log_directory is relative
    spec = load_cluster_spec(EXAMPLES / "slurm.yaml")
    assert spec.options["scheduler_options"] == {"dashboard_address": ":8787"}
    spec = replace(spec, options={**spec.options, "scheduler_options": {"dashboard_address": ":0"}})
    assert (spec.scale, spec.wait_for_workers, spec.wait_timeout) == (32, 8, 7200.0)
    cluster = spec.make_cluster()
    try:
        script = cluster.job_script()
        address = cluster.scheduler_address
    finally:
        cluster.close()
    lines = script.splitlines()
    for header in (
        "#SBATCH -J webbflow",
        "#SBATCH -p normal",
        "#SBATCH -A my_allocation",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32G",
        "#SBATCH -t 04:00:00",
    ):
        assert header in lines
    assert "source ~/venvs/webbflow/bin/activate" in lines
    worker = lines[-1]
    assert "distributed.cli.dask_worker" in worker
    assert address in worker
    # 8 single-threaded workers of 4 GiB per job
    for arg in ("--nthreads 1", "--nworkers 8", "--memory-limit 4.00GiB", "--local-directory $TMPDIR"):
        assert arg in worker
    assert (tmp_path / "logs" / "dask").is_dir()


def test_pbs_example_job_script(monkeypatch, tmp_path):
    pytest.importorskip("dask_jobqueue")
    monkeypatch.chdir(tmp_path)
    spec = load_cluster_spec(EXAMPLES / "pbs.yaml")
    assert spec.options["scheduler_options"] == {"dashboard_address": ":8787"}
    spec = replace(spec, options={**spec.options, "scheduler_options": {"dashboard_address": ":0"}})
    assert spec.scale is None
    assert spec.adapt == {"minimum": 8, "maximum": 64}
    cluster = spec.make_cluster()
    try:
        script = cluster.job_script()
        address = cluster.scheduler_address
    finally:
        cluster.close()
    lines = script.splitlines()
    for header in (
        "#PBS -N webbflow",
        "#PBS -q workq",
        "#PBS -A my_allocation",
        "#PBS -l select=1:ncpus=8:mem=32GB",
        "#PBS -l walltime=04:00:00",
    ):
        assert header in lines
    assert lines[-1].count(address) == 1
    assert "--nthreads 1" in lines[-1] and "--nworkers 8" in lines[-1]


_FAKE_SBATCH = """#!/bin/sh
# stands in for SLURM: run the job script now, in its own process group
script=$(cat "$1")
setsid sh -c "$script" </dev/null >"{log}/job.out" 2>&1 &
echo "$!" >> "{log}/submitted"
echo "Submitted batch job $!"
"""
_FAKE_SCANCEL = """#!/bin/sh
echo "$1" >> "{log}/cancelled"
kill -TERM -- "-$1" 2>/dev/null
exit 0
"""


def test_slurm_example_runs_with_a_fake_sbatch(monkeypatch, tmp_path):
    """The whole SLURM path: scale → sbatch → worker joins → compute → close → scancel."""
    pytest.importorskip("dask_jobqueue")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", _FAKE_SBATCH), ("scancel", _FAKE_SCANCEL)):
        exe = bin_dir / name
        exe.write_text(text.format(log=tmp_path))
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    spec = load_cluster_spec(EXAMPLES / "slurm.yaml")
    # the recipe, shrunk to this machine: one job of one 1 GiB worker, no virtualenv to source
    options = dict(spec.options, cores=1, processes=1, memory="1GiB", job_script_prologue=[])
    options["local_directory"] = str(tmp_path / "scratch")
    options["scheduler_options"] = {"dashboard_address": ":0"}
    spec = replace(spec, options=options, scale=1, wait_for_workers=1, wait_timeout=90.0)
    with start_cluster(spec) as client:
        assert _sum_of_squares(client) == EXPECTED
        workers = client.scheduler_info()["workers"].values()
        assert [w["nthreads"] for w in workers] == [1]
    job = int((tmp_path / "submitted").read_text().split()[0])
    assert (tmp_path / "cancelled").read_text().split() == [str(job)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(job, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.killpg(job, signal.SIGKILL)
        pytest.fail("the worker job outlived the cluster")


# --- Kubernetes recipe ----------------------------------------------------------------------


def test_kubernetes_example_keys():
    spec = load_cluster_spec(EXAMPLES / "kubernetes.yaml")
    assert spec.cls == "dask_kubernetes.operator.KubeCluster"
    assert spec.scale == 16
    manifest = spec.options["custom_cluster_spec"]
    assert manifest["kind"] == "DaskCluster"
    worker = manifest["spec"]["worker"]["spec"]
    (container,) = worker["containers"]
    args = container["args"]
    assert args[:2] == ["dask", "worker"]
    assert args[args.index("--nthreads") + 1] == "1"
    # every worker mounts the shared volume holding the output directory
    (mount,) = container["volumeMounts"]
    assert mount["name"] in {v["name"] for v in worker["volumes"]}
    assert container["resources"]["limits"]["memory"] == "4Gi"


def test_kubernetes_example_matches_the_operator():
    kube = pytest.importorskip("dask_kubernetes.operator")
    import inspect

    spec = load_cluster_spec(EXAMPLES / "kubernetes.yaml")
    cls = spec.cluster_class()
    assert cls is kube.KubeCluster
    inspect.signature(cls).bind(**spec.options)  # every option is a KubeCluster parameter
    # the manifest has the shape the operator generates itself
    ours = spec.options["custom_cluster_spec"]
    theirs = kube.make_cluster_spec(name="webbflow")
    assert ours["apiVersion"] == theirs["apiVersion"]
    assert set(theirs["spec"]) <= set(ours["spec"])
    assert (
        ours["spec"]["scheduler"]["service"]["selector"] == theirs["spec"]["scheduler"]["service"]["selector"]
    )
    for part in ("worker", "scheduler"):
        (c_ours,) = ours["spec"][part]["spec"]["containers"]
        (c_theirs,) = theirs["spec"][part]["spec"]["containers"]
        assert c_ours["name"] == c_theirs["name"]
        assert {p["name"] for p in c_theirs["ports"]} <= {p["name"] for p in c_ours["ports"]}


def test_missing_extra_says_what_to_install(tmp_path):
    spec = _write(tmp_path, "class: dask_kubernetes_missing.operator.KubeCluster\n")
    with pytest.raises(UsageError) as err:
        load_cluster_spec(spec).cluster_class()
    assert "is the package providing 'dask_kubernetes_missing' installed?" in str(err.value)
    try:
        import dask_kubernetes  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match=r"pip install dask-kubernetes"):
            load_cluster_spec(EXAMPLES / "kubernetes.yaml").cluster_class()


# --- bad specs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("class: distributed.LocalCluster\nscael: 2\n", "unknown key 'scael'; did you mean 'scale'?"),
        ("options: {}\n", "class: expected a dotted import path"),
        ("class: LocalCluster\n", "class: expected a dotted import path"),
        ("class: distributed.LocalCluster\noptions: [1, 2]\n", "options: expected a mapping"),
        ("class: distributed.LocalCluster\nscale: -1\n", "scale: expected a number of workers"),
        ("class: distributed.LocalCluster\nscale: two\n", "scale: expected a number of workers"),
        ("class: distributed.LocalCluster\nscale: 2\nadapt: {maximum: 3}\n", "scale and adapt"),
        ("class: distributed.LocalCluster\nadapt: {minmum: 1}\n", "adapt: unknown key 'minmum'"),
        ("class: distributed.LocalCluster\nadapt: {minimum: 4, maximum: 2}\n", "adapt: expected minimum"),
        ("class: distributed.LocalCluster\nwait_for_workers: yes\n", "wait_for_workers: expected"),
        ("class: distributed.LocalCluster\nwait_timeout: soon\n", "wait_timeout: expected"),
        ("- class\n", "expected a mapping with keys class"),
        ("class: [unclosed\n", "not valid YAML (line"),
    ],
)
def test_bad_spec_one_line(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(UsageError) as err:
        load_cluster_spec(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"cluster spec {path}: ")
    assert expected in message


def test_bad_class_and_options_one_line(tmp_path):
    path = _write(tmp_path, "class: distributed.NoSuchCluster\n")
    with pytest.raises(UsageError, match=r"class 'distributed.NoSuchCluster': distributed has no class"):
        load_cluster_spec(path).cluster_class()
    path = _write(
        tmp_path,
        "class: distributed.LocalCluster\n"
        "options: {n_wrkers: 2, processes: false, dashboard_address: ':0'}\n",
    )
    with pytest.raises(UsageError) as err, start_cluster(load_cluster_spec(path)):
        pass
    assert "\n" not in str(err.value)
    assert f"cluster spec {path}: options: distributed.LocalCluster(...) failed: " in str(err.value)
    assert "TypeError" in str(err.value) and "n_wrkers" in str(err.value)
    with pytest.raises(UsageError, match="file not found"):
        load_cluster_spec(tmp_path / "missing.yaml")
