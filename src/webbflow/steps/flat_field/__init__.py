"""``flat_field``: divide count rates by the pixel flat and propagate its uncertainty (imaging)."""
