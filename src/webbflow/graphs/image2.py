"""Image2: count-rate images (``rate``, ``rateints``) to calibrated images (``cal``, ``calints``).

jwst's ``calwebb_image2`` for NIRCam, NIRISS, FGS and MIRI imaging::

    assign_wcs → bkg_subtract → flat_field → photom  (→ resample: per-exposure i2d, not built yet)

``bkg_subtract`` runs when background exposures are given (an Image2 association's
``background`` members, or ``--steps.bkg_subtract.bkg_list``) and is SKIPPED otherwise; an
association's ``selfcal`` members (``webbflow asn make --selfcal``: the other dithered science
exposures) give MIRI-style background self-calibration, their sigma-clipped median
(``bkg_subtract.combine="median"``). MIRI: the WCS is the SIAF ``MIRIM_FULL`` one (reference
columns outside its bounding box), the flat and the PHOTOM row (FILTER + SUBARRAY) come from the
MIRI defaults (:mod:`webbflow.io.reffiles.miri_imaging`) or CRDS, and the reference columns are
``DO_NOT_USE`` in the ``cal`` (the flat's DQ), so resample leaves them out.
Every step is lazy; the runner (:func:`webbflow.graphs.runner.run_image2`) writes the products.

The per-exposure mosaic: :func:`i2d_products` is called by the runner with every calibrated
exposure and the ``resample`` step configuration; as jwst's Image2 it drizzles each 2-D ``cal``
to ``<root>_i2d.fits`` (``--steps.resample.skip=true`` turns it off).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr

from webbflow.engine.step import Pipeline

if TYPE_CHECKING:
    from webbflow.engine.execute import Product

log = logging.getLogger("webbflow")

#: Step names jwst's Image2Pipeline has that webbflow accepts in ``steps`` but does not run here.
HOOKED_STEPS = ("resample",)


class Image2(Pipeline):
    """The Image2 pipeline for near-infrared and MIRI imaging exposures.

    Examples
    --------
    >>> from webbflow.graphs.image2 import Image2
    >>> pipe = Image2(steps={"flat_field": {"skip": True}})
    >>> list(pipe.steps)
    ['assign_wcs', 'bkg_subtract', 'flat_field', 'photom']
    """

    name = "image2"
    cal_step = "image2"
    step_names = ("assign_wcs", "bkg_subtract", "flat_field", "photom")


def i2d_products(
    cal: xr.Dataset, stem: str, resample: Mapping[str, Any], output_dir: Path, overwrite: bool
) -> list[Product]:
    """Per-exposure mosaic products of one calibrated exposure (the ``resample`` hook).

    Parameters
    ----------
    cal
        The lazy calibrated exposure (output of :class:`Image2`).
    stem
        Output root: products are ``<stem>_<suffix>.fits``.
    resample
        The ``resample`` step parameters given by the user (``{"skip": "true"}``…).
    output_dir, overwrite
        Where products go, and whether they may replace existing files.

    Returns
    -------
    list
        ``<stem>_i2d.fits`` (the exposure drizzled onto a distortion-free TAN grid in its
        own orientation, as jwst's Image2 ``resample``) for a 2-D ``cal``; nothing for
        ``calints`` or ``skip=True``.
    """
    from webbflow.io.products import fits_product
    from webbflow.model import with_meta
    from webbflow.steps.resample.step import ResampleStep

    step = ResampleStep(**dict(resample))
    if step.params.skip or "sci" not in cal or cal["sci"].dims != ("y", "x"):
        return []
    path = output_dir / f"{stem}_i2d.fits"
    mosaic = with_meta(step([cal]), {"filename": path.name})
    return [fits_product(mosaic, path, "i2d", overwrite=overwrite)]
