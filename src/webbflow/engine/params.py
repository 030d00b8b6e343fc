"""Typed step parameters: frozen dataclasses with one documented field per parameter.

A step declares ``class Params(StepParams)`` with fields made by :func:`param`.
Values from the command line or a parameter file arrive as strings or YAML
scalars and are converted by :func:`coerce`; unknown names fail and name the
closest valid one.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from webbflow.errors import UsageError, suggest

P = TypeVar("P", bound="StepParams")


def param(
    default: Any, doc: str, *, choices: tuple[Any, ...] | None = None, minimum: float | None = None
) -> Any:
    """A documented parameter field (use inside a :class:`StepParams` subclass)."""
    return dataclasses.field(default=default, metadata={"doc": doc, "choices": choices, "min": minimum})


@dataclasses.dataclass(frozen=True)
class StepParams:
    """Parameters every step has."""

    skip: bool = param(False, "Skip this step (records SKIPPED in meta.cal_step).")

    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field[Any]]:
        """Parameter name -> dataclass field, in declaration order."""
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_mapping(cls: type[P], values: Mapping[str, Any], where: str) -> P:
        """Build validated parameters from raw ``values``; ``where`` names the step in errors."""
        fields = cls.fields()
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, raw in values.items():
            if name not in fields:
                raise UsageError(f"unknown parameter {where}.{name}{suggest(name, fields)}")
            kwargs[name] = coerce(raw, hints[name], f"{where}.{name}", fields[name])
        return cls(**kwargs)

    def replace(self: P, values: Mapping[str, Any], where: str) -> P:
        """A copy with ``values`` (validated like :meth:`from_mapping`) applied."""
        merged = {**dataclasses.asdict(self), **values}
        return type(self).from_mapping(merged, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the parameter values."""
        return dataclasses.asdict(self)


_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


def coerce(raw: Any, hint: Any, where: str, field: dataclasses.Field[Any] | None = None) -> Any:
    """Convert ``raw`` (a string or YAML scalar) to the type ``hint``; raise UsageError if it cannot."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_none = raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "null", ""))
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(raw, arg, where, field)
            except UsageError as exc:
                errors.append(str(exc))
        raise UsageError(errors[0] if errors else f"{where}: invalid value {raw!r}")
    if origin is typing.Literal:
        text = str(raw)
        if text not in [str(a) for a in args]:
            raise UsageError(f"{where}: {raw!r} is not one of {', '.join(map(str, args))}")
        return next(a for a in args if str(a) == text)
    try:
        if hint is bool:
            if isinstance(raw, bool):
                value: Any = raw
            elif str(raw).strip().lower() in _TRUE:
                value = True
            elif str(raw).strip().lower() in _FALSE:
                value = False
            else:
                raise ValueError
        elif hint is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            value = int(raw) if not isinstance(raw, str) else int(raw.strip())
        elif hint is float:
            value = float(raw)
        elif hint is str:
            value = str(raw)
        else:
            value = raw
    except (TypeError, ValueError):
        name = getattr(hint, "__name__", str(hint))
        raise UsageError(f"{where}: expected {name}, got {raw!r}") from None
    if field is not None:
        choices = field.metadata.get("choices")
        if choices and value not in choices:
            raise UsageError(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}")
        minimum = field.metadata.get("min")
        if minimum is not None and value is not None and value < minimum:
            raise UsageError(f"{where}: {value!r} is below the minimum {minimum}")
    return value
