"""The group_scale Detector1 step: see :mod:`webbflow.steps.group_scale.step`."""
