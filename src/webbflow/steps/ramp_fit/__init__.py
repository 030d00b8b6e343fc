"""``ramp_fit``: ordinary-least-squares slopes of the ramps (rate and rateints planes)."""
