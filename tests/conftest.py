"""Shared fixtures: a private reference cache for the whole test session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Generate embedded default references into a per-session cache, not the user's."""
    if not os.environ.get("WEBBFLOW_CACHE"):
        os.environ["WEBBFLOW_CACHE"] = str(tmp_path_factory.mktemp("webbflow-cache"))


@pytest.fixture(autouse=True)
def _webbflow_log_propagates():
    """Let caplog see webbflow's log: the CLI (tested in-process) stops it propagating."""
    import logging

    logger = logging.getLogger("webbflow")
    saved = (logger.propagate, list(logger.handlers), logger.level)
    logger.propagate, logger.handlers[:] = True, []
    yield
    logger.propagate, logger.handlers[:], _ = saved[0], saved[1], logger.setLevel(saved[2])
