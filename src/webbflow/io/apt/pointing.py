"""Read APT's ``.pointing`` export: one :class:`PointingRow` per exposure row, in file order.

The file lists, per visit (``** Visit O:V``), a table whose rows are
``Tar Tile Exp Dith Aperture Target RA Dec BaseX BaseY DithX DithY V2 V3 IdlX IdlY Level Type
ExPar DkPar [dDist]``; ``Exp`` indexes the template's exposure specifications and ``Dith`` the
dither position of that specification. The target name is a fixed-width, possibly truncated
field, so rows are matched with a pattern rather than split on blanks.
"""

from __future__ import annotations

import re
from pathlib import Path

from webbflow.errors import InputError
from webbflow.io.apt.model import PointingRow

_FLOAT = r"([+-]?\d+\.\d*)"
_ROW = re.compile(
    r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(.*?)\s+"
    + r"\s+".join([_FLOAT] * 10)
    + r"\s+(\S+)\s+(\S+)\s+(-?\d+)\s+(-?\d+)"
)
_VISIT = re.compile(r"^\*\*\s*Visit\s+(\d+):(\d+)")
_PROPOSAL = re.compile(r"^JWST Pointing Report for .*?Proposal\s+(\d+)")


def read_pointing(path: str | Path) -> tuple[str | None, tuple[PointingRow, ...]]:
    """Parse a ``.pointing`` file.

    Parameters
    ----------
    path
        The APT pointing export.

    Returns
    -------
    program, rows
        The proposal number of the header (``None`` if absent) and every exposure row
        (science, parallel, target acquisition…) in file order.

    Raises
    ------
    InputError
        Missing or unreadable file, a row before any ``** Visit`` line, or no rows at all.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the APT pointing file ({exc.strerror or exc})") from None
    program: str | None = None
    visit: tuple[int, int] | None = None
    rows: list[PointingRow] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#") or not line.strip():
            continue
        if m := _PROPOSAL.match(line):
            program = m.group(1)
            continue
        if m := _VISIT.match(line):
            visit = (int(m.group(1)), int(m.group(2)))
            continue
        if line.split()[0] == "Glossary":
            break
        m = _ROW.match(line)
        if m is None:
            continue  # headers, separators, observation labels
        if visit is None:
            raise InputError(f"{path}:{number}: exposure row before any '** Visit O:V' line")
        g = m.groups()
        rows.append(
            PointingRow(
                line=number,
                observation=visit[0],
                visit=visit[1],
                tile=int(g[1]),
                exp=int(g[2]),
                dith=int(g[3]),
                aperture=g[4],
                target_id=int(g[5]),
                target_name=g[6].strip(),
                ra=float(g[7]),
                dec=float(g[8]),
                v2=float(g[13]),
                v3=float(g[14]),
                idl_x=float(g[15]),
                idl_y=float(g[16]),
                level=g[17],
                type=g[18],
            )
        )
    if not rows:
        raise InputError(
            f"{path}: no exposure rows ('Tar Tile Exp Dith Aperture …') in the APT pointing file"
        )
    return program, tuple(rows)
