"""APT proposals (the ``.xml`` + ``.pointing`` exports) → one planned exposure per detector.

>>> program = read_apt("prop.xml", "prop.pointing")      # doctest: +SKIP
>>> rows = expand(program, roll=120.0, dates="2026-03-01")  # doctest: +SKIP

``read_apt`` joins the two files (modules: :mod:`.xml`, :mod:`.pointing`, :mod:`.reader`);
``expand`` (:mod:`.expand`) makes the :class:`PlannedExposure` rows with jwst file names and
per-detector sky positions (:mod:`.apertures`). Templates that are not simulated are listed in
``AptProgram.unsupported``.
"""

from webbflow.io.apt.expand import expand, jwst_filename, mirage_names
from webbflow.io.apt.model import (
    AptObservation,
    AptProgram,
    ExposureSpec,
    PlannedExposure,
    PointingRow,
    TemplateSpec,
    Unsupported,
)
from webbflow.io.apt.reader import read_apt

__all__ = [
    "AptObservation",
    "AptProgram",
    "ExposureSpec",
    "PlannedExposure",
    "PointingRow",
    "TemplateSpec",
    "Unsupported",
    "expand",
    "jwst_filename",
    "mirage_names",
    "read_apt",
]
