"""Step parameters from the command line and from parameter files.

Precedence: command line > parameter file > step defaults. Both sources give
``{step: {param: value}}``; values from the command line are strings and are
converted by each step's typed parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from webbflow.errors import UsageError


def parse_step_args(args: list[str]) -> dict[str, dict[str, str]]:
    """``--steps.<step>.<param>=value`` (or ``... value``) tokens -> nested dict.

    Raises
    ------
    UsageError
        On any token that is not of that form.

    Examples
    --------
    >>> parse_step_args(["--steps.jump.rejection_threshold=5", "--steps.superbias.skip", "true"])
    {'jump': {'rejection_threshold': '5'}, 'superbias': {'skip': 'true'}}
    """
    out: dict[str, dict[str, str]] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--steps."):
            raise UsageError(f"unrecognized argument {token!r}")
        key, eq, value = token[len("--steps.") :].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise UsageError(f"{token}: missing value (use {token}=VALUE)")
            value = args[i + 1]
            i += 1
        step, dot, name = key.partition(".")
        if not dot or not step or not name or "." in name:
            raise UsageError(f"{token}: expected --steps.<step>.<parameter>=VALUE")
        out.setdefault(step, {})[name] = value
        i += 1
    return out


def read_parameter_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Step parameters from a YAML or ASDF parameter file.

    Accepts our form ``steps: {jump: {rejection_threshold: 5}}`` and the jwst
    form ``steps: [{name: jump, parameters: {...}}, ...]`` (as written by
    ``stpipe``'s ``export_config``), so existing jwst parameter files work.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: parameter file not found")
    try:
        if p.suffix == ".asdf":
            import asdf

            with asdf.open(p) as af:
                tree = _plain(af.tree)
        else:
            tree = yaml.safe_load(p.read_text())
    except Exception as exc:
        raise UsageError(f"{p}: cannot read parameter file ({exc})") from None
    if not isinstance(tree, dict) or "steps" not in tree:
        raise UsageError(f"{p}: expected a mapping with a 'steps' key")
    steps = tree["steps"]
    items: list[tuple[Any, Any]]
    if isinstance(steps, dict):
        items = list(steps.items())
    elif isinstance(steps, list):
        items = [(s.get("name"), s.get("parameters", {})) for s in steps if isinstance(s, dict)]
    else:
        raise UsageError(f"{p}: 'steps' must be a mapping or a list")
    out: dict[str, dict[str, Any]] = {}
    for name, params in items:
        if not isinstance(name, str) or not isinstance(params, dict):
            raise UsageError(f"{p}: each step needs a name and a mapping of parameters")
        # jwst files carry bookkeeping keys that are not step parameters
        out[name] = {k: v for k, v in params.items() if k not in _JWST_BOOKKEEPING}
    return out


_JWST_BOOKKEEPING = {
    "pre_hooks",
    "post_hooks",
    "output_file",
    "output_dir",
    "output_ext",
    "output_use_model",
    "output_use_index",
    "save_results",
    "suffix",
    "search_output_file",
    "input_dir",
    "class",
    "name",
}


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    return node


def merge(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Later layers win, parameter by parameter."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for step, params in layer.items():
            out.setdefault(step, {}).update(params)
    return out
