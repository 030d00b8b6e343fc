"""Background subtraction (jwst ``BackgroundStep``, imaging): ``bkg_subtract``."""
