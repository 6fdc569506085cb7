"""Fixtures for the monitor tests; the helpers live in monhelpers.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from monhelpers import REPO, MonProject, Receiver

os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture
def mon(tmp_path: Path) -> MonProject:
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(REPO / "conf", root / "conf")
    return MonProject(root)


@pytest.fixture(scope="session")
def evidently_loaded():
    """Import evidently once per session (~5 s), telemetry off."""
    os.environ["DO_NOT_TRACK"] = "1"
    import evidently  # noqa: F401

    return True


@pytest.fixture
def receiver():
    made = []

    def make(statuses=(200,), delay_s=0.0):
        r = Receiver(statuses, delay_s)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
