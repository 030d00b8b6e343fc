"""Read configuration files: strict YAML, and the paths written in them.

:func:`read_yaml` reads YAML with two YAML 1.1 surprises turned off: numbers with leading
zeros (``program_number: 01111``, ``observation_number: 002``) stay text instead of becoming
octal integers, and ``12:30:00``-like values stay text instead of becoming base-60 numbers
(``time_obs``, sexagesimal RA/Dec). Duplicate keys fail.

:func:`expand_path` makes a path written in a file usable: environment variables
(``$MIRAGE_DATA``) and ``~`` expanded, and relative paths taken relative to the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from webbflow.errors import InputError

_ENV_VAR = re.compile(r"\$(\{\w+\}|\w+)")


def expand_path(text: str | os.PathLike[str], base_dir: Path | None = None, *, strict: bool = True) -> Path:
    """``text`` with environment variables and ``~`` expanded, made absolute against ``base_dir``.

    Parameters
    ----------
    text
        A path as written in a configuration file.
    base_dir
        Directory of that file; the current directory when ``None``.
    strict
        Raise ``ValueError`` when a ``$VARIABLE`` is not set; otherwise the text is kept.
    """
    raw = os.path.expandvars(os.fspath(text))
    unset = _ENV_VAR.search(raw)
    if unset and strict:
        raise ValueError(f"{os.fspath(text)}: environment variable {unset.group(1).strip('{}')} is not set")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (base_dir if base_dir is not None else Path.cwd()) / path
    return Path(os.path.normpath(path))


class _Loader(yaml.SafeLoader):
    """SafeLoader without octal/base-60 surprises and with duplicate-key errors."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key == "<<" or not isinstance(key, str | int | float | bool):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# A copy of SafeLoader's resolvers (not shared with it), with leading-zero and clock-time
# scalars resolved as text ahead of the int/float rules.
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_AS_TEXT = re.compile(r"^(?:[-+]?0[0-9_]+|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)$")
for _char in "+-0123456789":
    _Loader.yaml_implicit_resolvers.setdefault(_char, []).insert(0, ("tag:yaml.org,2002:str", _AS_TEXT))


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The top-level mapping of a YAML file.

    Raises
    ------
    InputError
        If the file is missing or unreadable, is not valid YAML (the message gives the
        line and column), or does not hold a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the configuration file: {exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise InputError(f"{path}: {where}YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: YAML syntax error: {exc}") from None
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise InputError(f"{path}: expected a mapping of keys (instrument:, aperture:, ...), found {found}")
    return data
