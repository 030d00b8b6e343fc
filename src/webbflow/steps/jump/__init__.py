"""The ``jump`` step: two-point-difference cosmic-ray jump detection."""
