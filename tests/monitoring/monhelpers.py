"""Helpers for the monitor tests: temp projects with a reference and a prediction log in the
serving contract's layout, configs composed from the repo's conf/, the real CLI, an HTTP receiver.

A uniquely named module, not conftest.py: several test folders have a conftest, and
``from conftest import ...`` picks whichever was imported first.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import drift_scenarios
from aiinfra.monitoring.schema import SinkConfig

REPO = Path(__file__).resolve().parents[2]
START = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)


def env_for(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIINFRA_", "DVC_"))}
    env.update(PYTHONUNBUFFERED="1", AIINFRA_PROJECT_DIR=str(project))
    env.update(extra)
    return env


class MonProject:
    """A temp project: conf/ copied from the repo, data/prepared with a reference, logs/."""

    def __init__(self, root: Path):
        self.root = root
        self.prepared = root / "data" / "prepared"
        self.logs = root / "logs" / "predictions"
        self.reports = root / "reports" / "drift"

    def reference(self, scenario: str = "no_drift", rows: int = 3000, seed: int = 1) -> None:
        drift_scenarios.write_reference(self.prepared, drift_scenarios.make(scenario, rows, seed=seed, reference=True))

    def log(
        self,
        scenario: str = "no_drift",
        rows: int = 4000,
        hours: int = 3,
        seed: int = 2,
        start: dt.datetime = START,
        **kw,
    ) -> list[str]:
        return drift_scenarios.write_prediction_log(
            self.logs, drift_scenarios.make(scenario, rows, seed=seed), start, hours=hours, **kw
        )

    def cfg(self, *overrides: str):
        """The validated config, as the CLI builds it (paths made absolute into this project)."""
        from aiinfra.config.compose import compose
        from aiinfra.config.validate import validate
        from aiinfra.plugins.manager import get_plugins

        base = [
            f"paths.prepared={self.prepared}",
            f"paths.logs={self.root / 'logs'}",
            f"paths.data={self.root / 'data'}",
            f"paths.feedback={self.root / 'data' / 'feedback'}",
            f"monitor.report_dir={self.reports}",
        ]
        return validate(compose([*base, *overrides], self.root / "conf"), get_plugins().registry)

    def cli(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "aiinfra", *args],
            cwd=self.root,
            env=env_for(self.root, **env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def cfg_with(cfg, **monitor):
    """A copy of a validated config with ``monitor`` keys replaced (lists of dicts included),
    validated again as the CLI would."""
    from omegaconf import OmegaConf

    from aiinfra.config.typed import to_dict
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    data = to_dict(cfg)
    data["monitor"].update(monitor)
    return validate(OmegaConf.create(data), get_plugins().registry)


@dataclass
class PagerSinkConfig(SinkConfig):
    """A plugin's own sink schema (registered by tests as ``monhelpers:PagerSinkConfig``)."""

    type: str = "pager"
    severity: str = "high"


PAGED: list[tuple[dict, object]] = []


def pager_sink(verdict, options: PagerSinkConfig, config) -> None:
    PAGED.append((verdict, options))


class Receiver:
    """A real HTTP server on 127.0.0.1 that records POSTs (bodies, arrival times) and answers with
    scripted statuses (the last one repeats); a 429 carries ``Retry-After: retry_after``."""

    def __init__(self, statuses=(200,), delay_s: float = 0.0, retry_after: str = "0"):
        import http.server
        import threading

        self.statuses = list(statuses)
        self.delay_s = delay_s
        self.retry_after = retry_after
        self.bodies: list[dict] = []
        self.times: list[float] = []  # time.monotonic() of each request's arrival
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                import json
                import time

                outer.times.append(time.monotonic())
                outer.hits += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                status = outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0]
                if status == 200:
                    outer.bodies.append(json.loads(body))
                    outer.headers = dict(self.headers)
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", outer.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests."""
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def validate_monitor(conf_dir: Path, updates: dict):
    """``conf/`` composed with ``monitor.<key>`` set to each value of ``updates`` (dotted keys, any
    YAML value: lists of sink dicts too), then validated: the typed config, or the ConfigError."""
    from omegaconf import OmegaConf

    from aiinfra.config.compose import compose
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    raw = compose([], Path(conf_dir))
    for key, value in updates.items():
        OmegaConf.update(raw, f"monitor.{key}", value, merge=False, force_add=True)
    return validate(raw, get_plugins().registry)
