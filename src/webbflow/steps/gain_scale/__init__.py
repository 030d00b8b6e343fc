"""``gain_scale``: rescale rates by the gain reference's GAINFACT (non-standard gain settings)."""
