"""1/f and flicker noise removal from ramps (jwst ``clean_flicker_noise``, median method)."""
