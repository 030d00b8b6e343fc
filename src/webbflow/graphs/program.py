"""Whole programs: a plan's exposures through simulate → detector1 → image2 → image3.

The exposure stages of every exposure go into **one graph**: the ``uncal`` is simulated and
written, Detector1 runs on a lazy stand-in for reading it back (:func:`webbflow.io.reopen.reopened`),
Image2 likewise on the ``rate``. Products are written as their tiles complete
(:func:`webbflow.engine.stream.run_tasks`) and recorded in a completion ledger. Then each
level-3 product (one per observation, instrument and filter) runs Image3 on its members' ``cal``
files.

Resuming: a product whose ledger marker matches its recipe (everything that decides its bytes)
and its file is skipped; an exposure restarts from its latest complete product file. Because the
lazy stand-in equals the file, a resumed run writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from webbflow import __version__
from webbflow.engine.ledger import Ledger
from webbflow.engine.stream import Failure, Report, Task, run_tasks
from webbflow.errors import InputError, UsageError, WebbflowError
from webbflow.graphs.plan import Plan, sim_config
from webbflow.graphs.plan_asn import image3_groups
from webbflow.graphs.runner import RunOptions, detector1_outputs, image2_products
from webbflow.io.fits_reader import open_exposure, open_product
from webbflow.io.reopen import reopened

log = logging.getLogger("webbflow")

Stage = Literal["simulate", "detector1", "image2", "image3"]
STAGES: tuple[Stage, ...] = ("simulate", "detector1", "image2", "image3")
#: Steps configured under each pipeline (``--steps.<step>.<param>`` goes to the one that has it).
StepConfig = dict[str, Any]
_IMAGE3_STEPS = frozenset({"tweakreg", "skymatch", "outlier_detection", "resample", "source_catalog"})


@dataclass(frozen=True)
class ProgramOptions:
    """How to run a program."""

    output_dir: Path
    stages: tuple[Stage, ...] = STAGES
    scheduler: str | None = "local"
    steps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seed: int = 0
    checkpoint: Literal["zarr"] | None = None
    verify: Literal["checksum", "size"] = "checksum"
    overwrite: bool = False  # redo every product, complete or not
    tile: int | None = None
    progress: bool = True
    window: int | None = None  # exposures in flight; None: twice the cluster's threads

    @functools.cached_property
    def pipeline_steps(self) -> tuple[StepConfig, StepConfig, StepConfig]:
        """:func:`split_steps` of :attr:`steps`, computed once (it builds the pipelines)."""
        return split_steps(self.steps)


@dataclass
class ProgramReport:
    """What a program run wrote, skipped (complete from an earlier run) and failed."""

    exposures: Report
    mosaics_written: list[Path] = field(default_factory=list)
    mosaics_skipped: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.exposures.failed

    def summary(self) -> str:
        lines = [self.exposures.summary()]
        if self.mosaics_written or self.mosaics_skipped:
            lines.append(
                f"image3: {len(self.mosaics_written)} file(s) written, "
                f"{len(self.mosaics_skipped)} product(s) already complete"
            )
        lines += [f"  FAILED {f.group}: {f.path.name}: {f.message}" for f in self.failed]
        lines.append(f"program finished in {self.seconds:.1f} s")
        return "\n".join(lines)


def recipe(*parts: Any) -> str:
    """A short hash of everything that decides a product's bytes."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def split_steps(
    steps: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``--steps`` overrides for (detector1, image2, image3), by the pipeline that has each step."""
    from webbflow.graphs.detector1 import Detector1
    from webbflow.graphs.image2 import HOOKED_STEPS, Image2

    d1_names, i2_names = set(Detector1().steps), set(Image2().steps) | set(HOOKED_STEPS)
    d1: dict[str, Any] = {}
    i2: dict[str, Any] = {}
    i3: dict[str, Any] = {}
    for name, params in steps.items():
        if name in _IMAGE3_STEPS - {"resample"}:
            i3[name] = dict(params)
        elif name in i2_names:
            i2[name] = dict(params)
            if name == "resample":
                i3[name] = dict(params)
        elif name in d1_names:
            d1[name] = dict(params)
        else:
            raise UsageError(f"--steps.{name}: no such step in detector1, image2 or image3")
    return d1, i2, i3


def exposure_recipes(row: Mapping[str, Any], options: ProgramOptions) -> tuple[str, str, str]:
    """The recipes of an exposure's ``uncal``, ``rate``/``rateints`` and ``cal`` products."""
    d1_steps, i2_steps, _ = options.pipeline_steps
    r_uncal = recipe("uncal", dict(row), options.seed, __version__)
    r_rate = recipe("detector1", r_uncal, d1_steps)
    return r_uncal, r_rate, recipe("image2", r_rate, i2_steps)


@dataclass(frozen=True)
class _Paths:
    uncal: Path
    rate: Path
    rateints: Path
    cal: Path


def _paths(out: Path, root: str) -> _Paths:
    return _Paths(*(out / f"{root}_{s}.fits" for s in ("uncal", "rate", "rateints", "cal")))


def stage_products(root: str, options: ProgramOptions) -> dict[str, list[Path]]:
    """The files each exposure stage writes for exposure ``root`` (a stage is complete when all are)."""
    from webbflow.steps.resample.step import ResampleStep

    out = options.output_dir
    p = _paths(out, root)
    zarr = options.checkpoint == "zarr"
    _, i2_steps, _ = options.pipeline_steps
    i2d = not ResampleStep(**i2_steps.get("resample", {})).params.skip  # as i2d_products decides
    return {
        "simulate": [p.uncal] + ([out / f"{root}_sim.zarr"] if zarr else []),
        "detector1": ([out / f"{root}_ramp.zarr"] if zarr else []) + [p.rate, p.rateints],
        "image2": [p.cal] + ([out / f"{root}_i2d.fits"] if i2d else []),
    }


@dataclass
class ExposureWork:
    """What one exposure still needs: the tasks to run and the products already complete."""

    tasks: list[Task] = field(default_factory=list)
    complete: list[Path] = field(default_factory=list)


def exposure_tasks(row: Mapping[str, Any], options: ProgramOptions, ledger: Ledger) -> ExposureWork:
    """The products still to write for one plan row, built lazily on its latest complete stage.

    A stage (simulate: ``uncal``; detector1: ``rate`` + ``rateints``; image2: ``cal`` + ``i2d``)
    is complete when all its files are complete in the ledger; the first incomplete stage
    restarts from the previous stage's file, and everything after it is rebuilt on top.

    Raises
    ------
    WebbflowError
        The exposure cannot be built (bad catalog, missing ``uncal`` without ``simulate``...).
    """
    out, root, stages = options.output_dir, str(row["filename"]), options.stages
    d1_steps, i2_steps, _ = options.pipeline_steps
    paths = _paths(out, root)
    recipes = dict(zip(("simulate", "detector1", "image2"), exposure_recipes(row, options), strict=True))
    files = stage_products(root, options)
    done = {
        stage: not options.overwrite and all(ledger.complete(f, recipes[stage]) for f in files[stage])
        for stage in files
    }
    work = ExposureWork(complete=[f for s in files if s in stages and done[s] for f in files[s]])
    need = {s: s in stages and not done[s] for s in files}
    run = RunOptions(output_dir=out, tile=options.tile, overwrite=True, save_intermediate=options.checkpoint)

    def add(stage: str, products: Sequence[Any]) -> None:
        work.tasks.extend(Task(p, root, recipes[stage]) for p in products)

    ramp = None
    if need["simulate"]:
        from webbflow.graphs.runner import simulation_products
        from webbflow.graphs.simulate import build_simulation

        sim = build_simulation(sim_config(row, seed=options.seed, output_dir=out), tile=options.tile)
        add("simulate", simulation_products(sim, ("uncal",), run, zarr=options.checkpoint == "zarr"))
        ramp = reopened(sim.exposure, paths.uncal, "uncal", tile=options.tile)
    rate = None
    if need["detector1"]:
        if ramp is None:
            ramp = open_exposure(_existing(paths.uncal, "simulate"), tile=options.tile)
        products, rate_ds, _ = detector1_outputs(ramp, d1_steps, run)
        add("detector1", products)
        rate = reopened(rate_ds, paths.rate, "rate", tile=options.tile)
    if need["image2"]:
        if rate is None:
            rate = open_product(_existing(paths.rate, "detector1"), tile=options.tile)
        add("image2", image2_products(rate, root, (), i2_steps, run))
    return work


def _existing(path: Path, stage: str) -> Path:
    if not path.exists():
        raise InputError(f"{path}: no such file, and {stage} is not in --stages to make it")
    return path


def run_program(plan: Plan, options: ProgramOptions) -> ProgramReport:
    """Run every stage of ``plan`` that ``options.stages`` names; write products into the output dir.

    Returns
    -------
    ProgramReport
        Written, skipped and failed products; a failed exposure does not stop the others.
    """
    start = time.perf_counter()
    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = replace(options, output_dir=out)
    ledger = Ledger(out, verify=options.verify)
    stale = ledger.clean_stale()
    if stale:
        log.info("removed %d temporary file(s) left by an interrupted run", len(stale))
    tasks: list[Task] = []
    complete: list[Path] = []
    build_failures: list[Failure] = []
    if any(s != "image3" for s in options.stages):
        for row in plan.rows():
            try:
                work = exposure_tasks(row, options, ledger)
            except WebbflowError as exc:
                root = str(row["filename"])
                build_failures.append(Failure(root, _paths(out, root).uncal, str(exc)))
                continue
            tasks += work.tasks
            complete += work.complete
        if options.progress:
            log.info("%d product(s) to write, %d already complete", len(tasks), len(complete))
    with _client(options.scheduler, options.progress) as client:
        window = options.window or _default_window(client)
        report = run_tasks(tasks, client, ledger=ledger, progress=options.progress, window=window)
        report.failed[:0] = build_failures
        report.skipped[:0] = complete
        result = ProgramReport(report)
        if "image3" in options.stages:
            address = client.scheduler.address if client is not None else options.scheduler
            _mosaics(plan, options, ledger, address, result)
    result.seconds = time.perf_counter() - start
    return result


def _default_window(client: Any) -> int:
    """Twice the cluster's worker threads (at least 4): enough to keep every worker busy."""
    try:
        threads = sum(int(w.get("nthreads", 1)) for w in client.scheduler_info()["workers"].values())
    except Exception:  # an adaptive cluster may have no worker yet
        threads = 0
    return max(4, 2 * threads)


@contextlib.contextmanager
def _client(spec: str | None, progress: bool) -> Iterator[Any]:
    """A distributed client for ``spec``; the threaded schedulers become one in-process worker."""
    from webbflow.engine.execute import scheduler

    if spec in (None, "threads", "sync", "synchronous"):
        from distributed import Client

        threads = 1 if spec in ("sync", "synchronous") else (os.cpu_count() or 1)
        kwargs = {"processes": False, "n_workers": 1, "threads_per_worker": threads}
        with Client(dashboard_address=None, **kwargs) as client:
            yield client
        return
    with scheduler(spec, progress=progress) as client:
        yield client


def _mosaics(
    plan: Plan, options: ProgramOptions, ledger: Ledger, address: Any, result: ProgramReport
) -> None:
    """Image3 for every level-3 product whose members all have their ``cal`` file."""
    from webbflow.graphs.image3 import run_image3
    from webbflow.io.asn import make_association, write_association

    _, _, i3_steps = options.pipeline_steps
    out = options.output_dir
    rows = {str(row["filename"]): row for row in plan.rows()}
    failed_roots = {f.group for f in result.exposures.failed}
    for product, roots in image3_groups(plan).items():
        cals = [_paths(out, root).cal for root in roots]
        missing = [r for r, c in zip(roots, cals, strict=True) if r in failed_roots or not c.exists()]
        if missing:
            why = f"image3 skipped: no cal file for {', '.join(missing)}"
            result.failed.append(Failure(product, out / f"{product}_i2d.fits", why))
            continue
        members = sorted(exposure_recipes(rows[r], options)[2] for r in roots)
        rec = recipe("image3", product, members, i3_steps, __version__)
        key = out / f"{product}_i2d.fits"
        if not options.overwrite and ledger.complete(key, rec):
            result.mosaics_skipped.append(product)
            continue
        try:
            asn = make_association(cals, kind="image3", product_name=product)
            asn_path = write_association(asn, out / f"{product}_image3_asn.json", overwrite=True)
            run = RunOptions(output_dir=out, scheduler=address, tile=options.tile, overwrite=True)
            run = replace(run, progress=options.progress, save_intermediate=options.checkpoint)
            written = run_image3([asn_path], i3_steps, run)
        except WebbflowError as exc:
            result.failed.append(Failure(product, out / f"{product}_i2d.fits", str(exc)))
            continue
        for path in written:
            ledger.mark(path, rec)
        result.mosaics_written += written
        log.info("image3 %s: %d file(s)", product, len(written))


def check_stages(names: Sequence[str]) -> tuple[Stage, ...]:
    """``--stages simulate,detector1`` → the stages in pipeline order; unknown names are an error."""
    wanted = [n.strip().lower() for n in names if n.strip()]
    unknown = [n for n in wanted if n not in STAGES]
    if unknown or not wanted:
        raise UsageError(f"--stages {','.join(names)}: expected a comma list of {', '.join(STAGES)}")
    return tuple(s for s in STAGES if s in wanted)
