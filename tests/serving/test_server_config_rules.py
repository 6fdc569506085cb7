"""Every serving option and rule fails in validation, naming ``server.<key>``, before torch is imported.

One subprocess composes and validates all the cases (``aiinfra.runner.load_config``, the path of
``aiinfra serve``) and reports each outcome; the tests below check them one by one.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from serving_helpers import env_for

# (overrides, the key the error must name); None: must validate
CASES = {
    "http-defaults": ([], None),
    "inference-inline": (["server.inference=inline"], None),
    "inference-thread": (["server.inference=thread"], None),
    "inference-unknown": (["server.inference=fast"], "server.inference"),
    "port-too-big": (["server.port=70000"], "server.port"),
    "port-negative": (["server.port=-1"], "server.port"),
    "port-0-ok": (["server.port=0"], None),
    "host-empty": (["server.host=''"], "server.host"),
    "runtime-unknown": (["server.runtime=tensorflow"], "server.runtime"),
    "runtime-torch": (["server.runtime=torch"], None),
    **{
        f"{key}-zero": ([f"server.{key}=0"], f"server.{key}")
        for key in (
            "workers",
            "max_body_bytes",
            "max_rows",
            "max_batch_size",
            "max_queue_rows",
            "log_flush_rows",
            "log_flush_interval_s",
            "body_timeout_s",
            "max_connections",
        )
    },
    "shutdown-delay-negative": (["server.shutdown_delay_s=-1"], "server.shutdown_delay_s"),
    "shutdown-delay-ok": (["server.shutdown_delay_s=5"], None),
    "log-policy-unknown": (["server.log_failure_policy=retry"], "server.log_failure_policy"),
    "log-policy-drop": (["server.log_failure_policy=drop"], None),
    "log-policy-spool-needs-dir": (["server.log_failure_policy=spool"], "server.log_spool_dir"),
    "log-policy-spool-same-dir": (
        ["server.log_failure_policy=spool", "server.log_dir=/tmp/x", "server.log_spool_dir=/tmp/x"],
        "server.log_spool_dir",
    ),
    "log-policy-spool-ok": (["server.log_failure_policy=spool", "server.log_spool_dir=/tmp/spool"], None),
    "log-buffer-below-flush": (["server.log_buffer_rows=10", "server.log_flush_rows=100"], "server.log_buffer_rows"),
    **{
        f"{key}-negative": ([f"server.{key}=-1"], f"server.{key}")
        for key in ("torch_threads", "max_wait_ms", "retry_after_s", "reload_interval_s", "graceful_timeout_s")
    },
    **{
        f"{key}-zero-ok": ([f"server.{key}=0"], None)
        for key in ("torch_threads", "max_wait_ms", "retry_after_s", "reload_interval_s", "graceful_timeout_s")
    },
    "batch-defaults": (["server=batch"], None),
    "batch-csv": (["server=batch", "server.input=in.csv", "server.output=out.pq"], None),
    "batch-rows-zero": (["server=batch", "server.batch_rows=0"], "server.batch_rows"),
    "batch-threads-negative": (["server=batch", "server.torch_threads=-1"], "server.torch_threads"),
    "batch-input-type": (["server=batch", "server.input=new.txt"], "server.input"),
    "batch-output-type": (["server=batch", "server.output=scored"], "server.output"),
    "batch-runtime-unknown": (["server=batch", "server.runtime=nope"], "server.runtime"),
}

SCRIPT = """
import json, sys
from aiinfra.errors import ConfigError
from aiinfra.runner import load_config
cases = json.loads(sys.argv[1])
out = {}
for name, overrides in cases.items():
    try:
        cfg = load_config(overrides)
        out[name] = {"ok": True, "inference": repr(cfg.server.inference) if cfg.server.type == "http" else None}
    except ConfigError as exc:
        out[name] = {"ok": False, "error": str(exc)}
out["__torch__"] = "torch" in sys.modules
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def outcomes(serving_project):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps({k: v[0] for k, v in CASES.items()})],
        cwd=serving_project,
        env=env_for(serving_project),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule(outcomes, name):
    key = CASES[name][1]
    got = outcomes[name]
    if key is None:
        assert got["ok"], got
    else:
        assert not got["ok"], f"{CASES[name][0]} validated"
        assert got["error"].startswith(key) or f"'{key}'" in got["error"], got["error"]


def test_inference_is_an_enum_member(outcomes):
    assert outcomes["inference-thread"]["inference"] == "<Inference.thread: 'thread'>"
    assert outcomes["http-defaults"]["inference"] == "<Inference.inline: 'inline'>"


def test_unknown_runtime_suggests_the_registered_ones(outcomes):
    assert "torch" in outcomes["runtime-unknown"]["error"]


def test_validation_does_not_import_torch(outcomes):
    assert outcomes["__torch__"] is False
