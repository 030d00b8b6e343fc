"""The webbflow error tree and the command-line exit codes that go with it.

Every error a user can cause is a :class:`WebbflowError` whose message is one
line naming the file, key or keyword and what was expected. The CLI prints
that line (no traceback) and exits with :attr:`WebbflowError.exit_code`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: Exit codes, as ``strun``: 0 success, 1 a step failed, 64 bad command line.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 64


class WebbflowError(Exception):
    """Base class of every error webbflow raises on purpose."""

    exit_code: int = EXIT_FAILED


class UsageError(WebbflowError, ValueError):
    """A bad command line, step name or parameter."""

    exit_code = EXIT_USAGE


class InputError(WebbflowError, ValueError):
    """An input file that cannot be used: missing, not FITS, wrong keywords, dims or dtype."""


class ReferenceFileError(WebbflowError, ValueError):
    """A reference file that is missing, malformed or does not match the exposure."""


class OutputError(WebbflowError, OSError):
    """An output that cannot be written (not writable, or exists and overwrite is off)."""


class StepError(WebbflowError, RuntimeError):
    """A step failed while building or computing its graph."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` suffix for ``name`` among ``choices``, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
