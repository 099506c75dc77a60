"""What the Ray test modules share (import the fixture into a module to use it there)."""

from __future__ import annotations

import os

import pytest

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # never reach the network; inherited by Ray's processes


@pytest.fixture(scope="module", autouse=True)
def _driver_outside_the_checkout(tmp_path_factory):
    """Ray puts its driver's working directory on its workers' sys.path: from the repo root
    they would import the source tree's whisperx_native (no compiled extension where the
    package is installed, as in CI) instead of the installed one."""
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("ray-driver"))
    try:
        yield
    finally:
        os.chdir(old)
