"""The layout of the test suite over pytest-xdist workers (tests/worker_layout.py)."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from project_helpers import REPO
from worker_layout import LONG_FIRST, RAY_SCOPE, RayModulesTogether, long_first, ray_module


def test_every_test_on_ray_is_in_a_ray_module(request: pytest.FixtureRequest) -> None:
    """A test that uses the session's Ray instance outside a ``test_ray_*.py`` module would start a
    second Ray on another worker."""
    on_ray = [item.nodeid for item in request.session.items if "ray_local" in getattr(item, "fixturenames", ())]
    if not on_ray:  # a run of a few files: `make test` collects the whole suite, the Ray tests included
        pytest.skip("no collected test uses ray_local")
    assert [nodeid for nodeid in on_ray if not ray_module(nodeid)] == []


def test_the_scheduler_puts_the_ray_modules_in_one_scope_and_other_modules_in_their_own() -> None:
    scope = object.__new__(RayModulesTogether)._split_scope  # needs no state of the scheduler's
    assert scope("tests/data/test_ray_prepare.py::test_a") == scope("tests/deploy/test_ray_serve.py::test_b[x]")
    assert scope("tests/deploy/test_ray_serve.py::test_b") == RAY_SCOPE
    assert scope("tests/serving/test_load.py::test_a") == scope("tests/serving/test_load.py::test_b[1]")
    assert scope("tests/serving/test_load.py::test_a") == "tests/serving/test_load.py"
    assert scope("tests/serving/test_reload.py::test_a") != scope("tests/serving/test_load.py::test_a")


def test_the_long_modules_exist_and_go_first_longest_first() -> None:
    missing = [m for m in LONG_FIRST if m != RAY_SCOPE and not (REPO / m).is_file()]
    assert missing == [], "tests/worker_layout.py's LONG_FIRST names modules that are gone"
    scopes = ["tests/test_a.py", "tests/test_pipeline.py", "tests/test_b.py", RAY_SCOPE, "tests/test_c.py"]
    queue = OrderedDict((scope, {}) for scope in scopes)
    long_first(queue)
    assert list(queue) == [
        RAY_SCOPE,
        "tests/test_pipeline.py",
        "tests/test_a.py",
        "tests/test_b.py",
        "tests/test_c.py",
    ]
