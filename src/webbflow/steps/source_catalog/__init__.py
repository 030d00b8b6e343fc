"""Image3 ``source_catalog``: tiled detection, deblending and photometry of a mosaic.

See :mod:`webbflow.steps.source_catalog.step` for the algorithm and
:func:`~webbflow.steps.source_catalog.catalog.write_catalog` for the ECSV product.
"""

from webbflow.steps.source_catalog.apcorr import ApertureParams, psf_aperture_params
from webbflow.steps.source_catalog.catalog import assemble, to_abmag, write_catalog
from webbflow.steps.source_catalog.step import Catalog, Params, SourceCatalogStep, source_catalog

__all__ = [
    "ApertureParams",
    "Catalog",
    "Params",
    "SourceCatalogStep",
    "assemble",
    "psf_aperture_params",
    "source_catalog",
    "to_abmag",
    "write_catalog",
]
