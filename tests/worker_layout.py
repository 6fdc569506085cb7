"""How `make test` spreads the core tests over CPU workers (pytest-xdist, ``--dist loadfile``).

Each test module goes to one worker whole, so its module-scoped fixtures are built once. The Ray
modules, named ``test_ray_*.py``, all go to one worker, so the session still starts a single Ray
instance (``ray_local``: ~6 s and ~1 GiB each). test_worker_layout.py holds every test that uses
Ray to that name.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from xdist.scheduler import LoadFileScheduling

RAY_MODULE_PREFIX = "test_ray_"
RAY_SCOPE = "the Ray modules"


def ray_module(nodeid: str) -> bool:
    """Whether the test ``nodeid`` lives in a module that the Ray tests' worker runs."""
    return PurePosixPath(nodeid.split("::", 1)[0]).name.startswith(RAY_MODULE_PREFIX)


class RayModulesTogether(LoadFileScheduling):
    """``--dist loadfile``, with every Ray module in one scope."""

    def _split_scope(self, nodeid: str) -> str:
        return RAY_SCOPE if ray_module(nodeid) else super()._split_scope(nodeid)
