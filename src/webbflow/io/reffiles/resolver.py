"""The reference resolver: explicit override → CRDS (if configured) → embedded default."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import xarray as xr

from webbflow.engine.step import RefFile
from webbflow.errors import ReferenceFileError
from webbflow.io.reffiles import crds_source, defaults
from webbflow.io.reffiles.opener import open_reference
from webbflow.model import get_meta, meta_value


class ReferenceResolver:
    """Answers "which file of reftype R for this exposure", and opens it.

    Implements :class:`webbflow.engine.step.Resolver`. Order: an explicit
    override (a path, or ``"N/A"`` to skip the step) → CRDS when configured →
    the embedded default set (:mod:`webbflow.io.reffiles.defaults`).

    Parameters
    ----------
    use_crds
        ``True``/``False`` to force CRDS on or off; ``None`` (default) uses CRDS
        when the ``CRDS_PATH`` environment variable is set.
    crds_context
        CRDS context (``"jwst_1322.pmap"``); ``None`` lets CRDS choose
        (``CRDS_CONTEXT``, else the build context of the installed jwst).
    """

    _default: ClassVar[ReferenceResolver | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, use_crds: bool | None = None, crds_context: str | None = None) -> None:
        self.use_crds = use_crds
        self.crds_context = crds_context
        self._cache: dict[tuple[Any, ...], RefFile | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> ReferenceResolver:
        """The process-wide resolver (CRDS if ``CRDS_PATH`` is set), created once."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def resolve(self, reftype: str, ds: xr.Dataset, override: str | None) -> RefFile | None:
        """The reference file of ``reftype`` for ``ds``, or ``None`` if it is N/A.

        Parameters
        ----------
        reftype
            jwst reference type (``"gain"``).
        ds
            The exposure (its ``attrs["meta"]`` selects the file).
        override
            ``override_<reftype>`` value: a path, ``"N/A"`` (any case), or ``None``.

        Raises
        ------
        ReferenceFileError
            If the override does not exist, CRDS fails, or there is no default.
        """
        if override is not None:
            text = str(override).strip()
            if text.upper() == "N/A":
                return None
            path = Path(text).expanduser()
            if not path.is_file():
                raise ReferenceFileError(f"override_{reftype}: {text}: no such reference file")
            return RefFile(reftype, path, text)
        if crds_source.crds_configured(self.use_crds):
            params = crds_source.crds_parameters(get_meta(ds))
            key: tuple[Any, ...] = ("crds", reftype, self.crds_context, tuple(sorted(params.items())))
            return self._cached(key, lambda: self._from_crds(reftype, params))
        frames = None
        if reftype == "dark":
            frames = defaults.dark_frames_needed(
                int(meta_value(ds, "exposure.ngroups", 1) or 1),
                int(meta_value(ds, "exposure.nframes", 1) or 1),
                int(meta_value(ds, "exposure.groupgap", 0) or 0),
            )
        detector = str(meta_value(ds, "instrument.detector", "") or "")
        key = ("default", reftype, detector.upper(), frames)
        return self._cached(key, lambda: self._from_defaults(reftype, detector, frames))

    def open(self, ref: RefFile, ds: xr.Dataset) -> xr.Dataset:
        """``ref`` as a lazy Dataset cropped to ``ds``'s window and chunked like its tiles."""
        return open_reference(ref, ds)

    def clear(self) -> None:
        """Forget cached resolutions (e.g. after changing the CRDS configuration)."""
        with self._lock:
            self._cache.clear()

    # -- internals ---------------------------------------------------------------------------
    def _cached(self, key: tuple[Any, ...], compute: Any) -> RefFile | None:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = compute()
        with self._lock:
            self._cache[key] = value
        return value

    def _from_crds(self, reftype: str, params: dict[str, Any]) -> RefFile | None:
        path = crds_source.crds_reference(reftype, params, self.crds_context)
        return None if path is None else RefFile(reftype, path, f"crds://{path.name}")

    @staticmethod
    def _from_defaults(reftype: str, detector: str, frames: int | None) -> RefFile:
        if not detector:
            raise ReferenceFileError(
                f"exposure has no DETECTOR keyword: cannot choose a default {reftype} reference; "
                f"pass override_{reftype}"
            )
        path = defaults.default_reference(reftype, detector, frames)
        return RefFile(reftype, path, f"webbflow://{path.name}")
