"""``photom``: convert count rates (DN/s) to surface brightness (MJy/sr) and attach the pixel-area map."""
