"""``assign_wcs``: attach a gwcs imaging WCS (detector → V2/V3 → ICRS) to an exposure."""
