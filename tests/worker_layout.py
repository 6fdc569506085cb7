"""How `make test` spreads the core tests over CPU workers (pytest-xdist, ``--dist loadfile``).

- Each test module goes to one worker whole, so its module-scoped fixtures are built once.
- The Ray modules, named ``test_ray_*.py``, all go to one worker, so the session still starts a
  single Ray instance (``ray_local``: ~6 s and ~1 GiB each). test_worker_layout.py holds every test
  that uses Ray to that name.
- The modules that take minutes are handed out first, longest first. xdist's own order (most tests
  first) hands out the 1-2-test end-to-end modules last, where one worker can run a 3-minute module
  while the other idles.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import PurePosixPath

from xdist.scheduler import LoadFileScheduling

RAY_MODULE_PREFIX = "test_ray_"
RAY_SCOPE = "the Ray modules"

# seconds that each took on one of two workers (commit f0b0f69, `make test-core`, --durations=0):
# 1,790 s of the suite's 3,035 s. A module missing here only starts later.
LONG_FIRST = (
    "tests/storage/test_s3_lifecycle.py",  # 210
    RAY_SCOPE,  # 190
    "tests/test_raw_lifecycle.py",  # 189
    "tests/test_faults_pipeline.py",  # 167
    "tests/test_pipeline.py",  # 156
    "tests/data/test_stream_prepare.py",  # 140
    "tests/test_closed_loop.py",  # 120
    "tests/training/test_team_mode.py",  # 100
    "tests/training/test_sweeps.py",  # 100
    "tests/test_config.py",  # 98
    "tests/training/test_regression.py",  # 91
    "tests/training/test_ddp.py",  # 84
    "tests/data/test_small_batch_parity.py",  # 73
    "tests/test_init_wheel.py",  # 69
)


def ray_module(nodeid: str) -> bool:
    """Whether the test ``nodeid`` lives in a module that the Ray tests' worker runs."""
    return PurePosixPath(nodeid.split("::", 1)[0]).name.startswith(RAY_MODULE_PREFIX)


def long_first(queue: OrderedDict) -> None:
    """Move the scopes of ``LONG_FIRST`` that ``queue`` holds to its front, in that order; the
    other scopes keep theirs."""
    for scope in reversed(LONG_FIRST):
        if scope in queue:
            queue.move_to_end(scope, last=False)


class RayModulesTogether(LoadFileScheduling):
    """``--dist loadfile``, with every Ray module in one scope and the long scopes handed out first."""

    def _split_scope(self, nodeid: str) -> str:
        return RAY_SCOPE if ray_module(nodeid) else super()._split_scope(nodeid)

    def _assign_work_unit(self, node) -> None:
        # the queue is only read here (it pops its first scope), so ordering it here is enough
        long_first(self.workqueue)
        super()._assign_work_unit(node)
