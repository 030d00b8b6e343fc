"""The charge_migration Detector1 step: see :mod:`webbflow.steps.charge_migration.step`."""
