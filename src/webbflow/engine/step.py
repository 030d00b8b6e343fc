"""The Step contract: typed parameters, declared reference types, a lazy ``build``.

A step subclass sets ``name`` (the jwst class alias, used on the command line
as ``--steps.<name>.<param>``), ``cal_step`` (its ``meta.cal_step`` key),
``reftypes`` and a ``Params`` dataclass, and implements
``build(ds, refs) -> Dataset``, which only builds a dask graph around the
step's pure kernel. :meth:`Step.__call__` does the generic work once: skip,
reference resolution (``override_<reftype>`` → CRDS → embedded default),
``meta.cal_step`` and ``meta.ref_file`` bookkeeping, logging.
"""

from __future__ import annotations

import logging
import time
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import xarray as xr

from webbflow.engine.params import StepParams
from webbflow.errors import UsageError, suggest
from webbflow.model import with_meta

log = logging.getLogger("webbflow")

#: Every step class by name (built-ins register themselves on definition).
STEPS: dict[str, type[Step]] = {}


@dataclass(frozen=True)
class RefFile:
    """A resolved reference file: its type, where it is, and what meta records."""

    reftype: str
    path: Path
    label: str


class Resolver(Protocol):
    """Answers "which file for reftype R for this exposure", and opens it."""

    def resolve(self, reftype: str, ds: xr.Dataset, override: str | None) -> RefFile | None:
        """The reference file to use, or ``None`` when it is ``N/A``."""
        ...

    def open(self, ref: RefFile, ds: xr.Dataset) -> xr.Dataset:
        """The reference cropped to ``ds``'s window and chunked like its tiles."""
        ...


#: Recompute the pipeline up to (not including) the current step on a crop of the
#: pipeline's input: ``rerun({"x": [0, 1, 2, 3]})``. Steps that need a global
#: statistic from a few pixels (refpix) use it so that the statistic does not wait
#: on, and hold in memory, every tile of the exposure.
Rerun = Callable[[Mapping[str, Any]], xr.Dataset]


class SkipStep(Exception):
    """Raised by ``build`` when the step does not apply; the message says why."""


class Step:
    """Base class of every calibration and simulation step."""

    name: ClassVar[str] = ""
    cal_step: ClassVar[str] = ""
    reftypes: ClassVar[tuple[str, ...]] = ()
    #: Reference types the step can do without: ``N/A`` leaves them out of ``refs``
    #: instead of skipping the step (e.g. saturation's superbias).
    optional_reftypes: ClassVar[tuple[str, ...]] = ()
    Params: ClassVar[type[StepParams]] = StepParams

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            cls.cal_step = cls.cal_step or cls.name
            STEPS[cls.name] = cls

    def __init__(self, params: StepParams | None = None, /, **values: Any) -> None:
        overrides = {k: values.pop(k) for k in list(values) if k.startswith("override_")}
        for key in overrides:
            if key.removeprefix("override_") not in self.reftypes:
                allowed = [f"override_{r}" for r in self.reftypes]
                raise UsageError(
                    f"unknown parameter {self.name}.{key}{suggest(key, allowed)}"
                    + (
                        f" (reference types of {self.name}: {', '.join(self.reftypes)})"
                        if self.reftypes
                        else f" ({self.name} uses no reference files)"
                    )
                )
        base = params if params is not None else self.Params()
        self.params = base.replace(values, self.name) if values else base
        self.overrides: dict[str, str | None] = {
            k.removeprefix("override_"): (None if v is None else str(v)) for k, v in overrides.items()
        }

    # -- the part subclasses write ------------------------------------------------------------
    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return the lazily transformed exposure (override in subclasses)."""
        raise NotImplementedError(f"{type(self).__name__}.build")

    # -- the generic part ---------------------------------------------------------------------
    def rerun(self, ds: xr.Dataset, indexers: Mapping[str, Any]) -> xr.Dataset:
        """This step's input ``ds`` restricted to ``indexers`` (``isel`` style), for global statistics.

        Inside a pipeline the crop is recomputed from the pipeline's input, so it
        depends only on those pixels; otherwise it is ``ds.isel(indexers)``.
        """
        return self._rerun(indexers) if self._rerun is not None else ds.isel(indexers)

    _rerun: Rerun | None = None

    def __call__(
        self, ds: xr.Dataset, resolver: Resolver | None = None, *, rerun: Rerun | None = None
    ) -> xr.Dataset:
        """Apply the step to ``ds`` lazily and record it in the metadata.

        ``rerun`` is given by a :class:`Pipeline` (see :data:`Rerun`); alone, a step
        crops its own input.
        """
        self._rerun = rerun
        try:
            return self._apply(ds, resolver)
        finally:
            self._rerun = None

    def _apply(self, ds: xr.Dataset, resolver: Resolver | None) -> xr.Dataset:
        if self.params.skip:
            return self.mark_skipped(ds, "skip=True")
        refs: dict[str, xr.Dataset] = {}
        labels: dict[str, str] = {}
        if self.reftypes:
            resolver = resolver or default_resolver()
            for reftype in self.reftypes:
                ref = resolver.resolve(reftype, ds, self.overrides.get(reftype))
                if ref is None and reftype in self.optional_reftypes:
                    labels[reftype] = "N/A"
                    continue
                if ref is None:
                    return self.mark_skipped(ds, f"{reftype} reference file is N/A", {reftype: "N/A"})
                refs[reftype] = resolver.open(ref, ds)
                labels[reftype] = ref.label
        start = time.perf_counter()
        try:
            out = self.build(ds, refs)
        except SkipStep as why:
            return self.mark_skipped(ds, str(why), labels)
        log.debug("%s: graph built in %.3f s", self.name, time.perf_counter() - start)
        return self._record(out, "COMPLETE", labels)

    def mark_skipped(self, ds: xr.Dataset, why: str, labels: Mapping[str, str] | None = None) -> xr.Dataset:
        """``ds`` with ``meta.cal_step.<cal_step> = SKIPPED``; logs why."""
        log.info("%s: skipped (%s)", self.name, why)
        return self._record(ds, "SKIPPED", labels or {})

    def _record(self, ds: xr.Dataset, status: str, labels: Mapping[str, str]) -> xr.Dataset:
        updates: dict[str, Any] = {f"cal_step.{self.cal_step}": status}
        updates.update({f"ref_file.{r}.name": label for r, label in labels.items()})
        return with_meta(ds, updates)

    @classmethod
    def describe(cls) -> list[tuple[str, str, Any, str]]:
        """``(name, type, default, doc)`` of every parameter, overrides included."""
        hints = typing.get_type_hints(cls.Params)
        rows = []
        for name, field in cls.Params.fields().items():
            hint = hints[name]
            rows.append(
                (name, getattr(hint, "__name__", str(hint)), field.default, field.metadata.get("doc", ""))
            )
        rows += [
            (f"override_{r}", "str | None", None, f"Use this {r} reference file (or N/A).")
            for r in cls.reftypes
        ]
        return rows


def get_step(name: str) -> type[Step]:
    """The step class registered as ``name``; UsageError with a suggestion otherwise."""
    _load_builtin_steps()
    if name not in STEPS:
        raise UsageError(f"unknown step {name!r}{suggest(name, STEPS)}")
    return STEPS[name]


def _load_builtin_steps() -> None:
    import webbflow.steps  # noqa: F401  (registers the built-in steps)


def default_resolver() -> Resolver:
    """The process-wide default resolver (override → CRDS → embedded defaults)."""
    from webbflow.io.reffiles import ReferenceResolver

    return ReferenceResolver.default()


class Pipeline(Step):
    """An ordered composition of steps; itself a Step, so pipelines nest.

    ``steps`` configures sub-steps by name: ``{"jump": {"rejection_threshold": 5}}``.
    """

    #: Names of the sub-steps, in order (resolved through the step registry).
    step_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, steps: Mapping[str, Mapping[str, Any]] | None = None, **values: Any) -> None:
        super().__init__(**values)
        names = list(self.step_names)
        config = dict(steps or {})
        for key in config:
            if key not in names:
                raise UsageError(f"{self.name} has no step {key!r}{suggest(key, names)}")
        self.steps: dict[str, Step] = {name: get_step(name)(**dict(config.get(name, {}))) for name in names}

    @property
    def all_reftypes(self) -> tuple[str, ...]:
        """Reference types used by the sub-steps that are not skipped."""
        seen: dict[str, None] = {}
        for step in self.steps.values():
            if not step.params.skip:
                seen.update(dict.fromkeys(step.reftypes))
        return tuple(seen)

    def __call__(
        self, ds: xr.Dataset, resolver: Resolver | None = None, *, rerun: Rerun | None = None
    ) -> xr.Dataset:
        """Apply every sub-step in order (lazily); return the last output.

        A nested pipeline reruns its own sub-steps from its own input, so ``rerun`` is not needed.
        """
        out = ds
        for _, out in self.stages(ds, resolver):  # noqa: B007 - the last stage is the result
            pass
        return out

    def active_steps(self, ds: xr.Dataset) -> dict[str, Step]:
        """The sub-steps that run on ``ds``, in order (all of them; subclasses may choose by ``ds``)."""
        return self.steps

    def stages(self, ds: xr.Dataset, resolver: Resolver | None = None) -> Iterator[tuple[str, xr.Dataset]]:
        """Yield ``(step name, lazy output)`` after each sub-step, for intermediates."""
        if self.params.skip:
            return
        resolver = resolver or (default_resolver() if self.all_reftypes else None)
        first = ds
        done: list[Step] = []
        for name, step in self.active_steps(ds).items():
            ds = step(ds, resolver, rerun=_prefix_rerun(first, tuple(done), resolver))
            done.append(step)
            yield name, ds


def _prefix_rerun(first: xr.Dataset, prefix: tuple[Step, ...], resolver: Resolver | None) -> Rerun:
    """A :data:`Rerun` that applies ``prefix`` to a crop of ``first``."""

    def rerun(indexers: Mapping[str, Any]) -> xr.Dataset:
        crop = first.isel(indexers)
        for step in prefix:
            crop = step(crop, resolver)
        return crop

    return rerun
