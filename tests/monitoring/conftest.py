"""Fixtures for the monitor tests; the helpers live in monhelpers.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aiinfra.runner import setup_environment
from monhelpers import REPO, MonProject, Receiver

setup_environment()  # DO_NOT_TRACK for Evidently, here and in every process a test starts


@pytest.fixture
def mon(tmp_path: Path) -> MonProject:
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(REPO / "conf", root / "conf")
    return MonProject(root)


@pytest.fixture(scope="session")
def evidently_loaded():
    """Import evidently once per session (~5 s), telemetry off (setup_environment above)."""
    import evidently  # noqa: F401

    return True


@pytest.fixture
def receiver():
    made = []

    def make(statuses=(200,), delay_s=0.0, retry_after="0"):
        r = Receiver(statuses, delay_s, retry_after)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
