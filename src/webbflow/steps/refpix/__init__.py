"""Reference-pixel correction (jwst ``refpix``) of NIR detectors, non-IRS2 readouts."""
