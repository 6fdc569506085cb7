"""The alert rules and the dashboard against the real thing: `promtool check rules`, a real
`prometheus` on 127.0.0.1 scraping a running `aiinfra serve`, rules firing when their condition is
made true, and a dashboard that names only metrics the server exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from aiinfra.deploy import monitoring
from aiinfra.deploy.schema import Alerts, K8sDeployConfig
from serving_helpers import REPO, ServerProcess, free_port, make_model

pytestmark = pytest.mark.skipif(
    not (shutil.which("prometheus") and shutil.which("promtool")),
    reason="needs the prometheus and promtool binaries: scripts/install_system_packages.sh",
)

#: exported by the serving runtime's reliability work (issue 14 names it as the autoscaling signal);
#: the dashboard and the KEDA trigger use it already


def deploy_cfg(**alerts) -> K8sDeployConfig:
    return K8sDeployConfig(name="aiinfra-test", alerts=Alerts(**alerts))


def test_promtool_accepts_the_rendered_rules(tmp_path):
    files = monitoring.render(None, deploy_cfg(), tmp_path)
    rules = tmp_path / "prometheus-rules.yaml"
    assert rules in files
    proc = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 6 rules found" in proc.stdout
    names = {r["alert"] for r in yaml.safe_load(rules.read_text())["groups"][0]["rules"]}
    assert names == {
        "AiinfraP99LatencyHigh",
        "AiinfraErrorRatioHigh",
        "AiinfraRejectedRatioHigh",
        "AiinfraPredictionLogWriteFailures",
        "AiinfraModelNotReady",
        "AiinfraDriftShareHigh",
    }


def _base(name: str) -> str:
    return re.sub(r"_(bucket|sum|count|total)$", "", name)


def _families(exposition: str) -> set[str]:
    """Every metric a scrape has samples of (sample names: *_total, *_bucket ... made base names)."""
    names = re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", exposition, re.M)
    declared = re.findall(r"^# TYPE (\S+) ", exposition, re.M)  # labelled families with no sample yet
    return {_base(n) for n in [*names, *declared]}


def _referenced(expr: str) -> set[str]:
    return {_base(m) for m in re.findall(r"\baiinfra_[a-z_]+", expr)}


class Prometheus:
    def __init__(self, root: Path, target: str, rules: Path, job: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(root / "prometheus.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> dict:
        return httpx.get(self.url + path, timeout=5).json()["data"]

    def firing(self) -> set[str]:
        try:
            alerts = self.get("/api/v1/alerts")["alerts"]
        except httpx.HTTPError:
            return set()
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

    def wait_firing(self, names: set[str], timeout: float = 60) -> set[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.firing()
            if names <= now:
                return now
            time.sleep(0.5)
        raise AssertionError(f"not firing after {timeout} s: {names - self.firing()}; firing: {self.firing()}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_prometheus_scrapes_the_server_and_the_rules_fire(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(REPO / "conf", project / "conf")
    model = make_model(project / "models" / "model")
    # the monitor's verdict, as `aiinfra monitor` leaves it: 80% of the columns drifted
    from aiinfra.monitoring.metrics import write_textfile

    write_textfile(
        {"drift_detected": True, "drift_share": 0.8, "threshold": 0.5, "rows": {"current": 500}},
        project / "reports" / "drift" / "drift.prom",
    )
    # thresholds made true on purpose: any prediction is slower than 1 µs, 80% > 50% drifted
    d = deploy_cfg(p99_latency_s=1e-6, drift_share=0.5, window="15s", for_="0s", evaluation_interval="1s")
    monitoring.render(None, d, tmp_path / "monitoring")
    server = ServerProcess(project, [f"server.model_uri={model}", "server.access_log=null"]).start()
    prom = None
    try:
        prom = Prometheus(
            tmp_path, f"127.0.0.1:{server.port}", tmp_path / "monitoring" / "prometheus-rules.yaml", d.name
        )
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
        with httpx.Client(base_url=server.url) as client:
            deadline = time.monotonic() + 60
            fired: set[str] = set()
            while time.monotonic() < deadline and not {"AiinfraP99LatencyHigh", "AiinfraDriftShareHigh"} <= fired:
                for _ in range(20):
                    assert client.post("/v2/models/model/infer", json=body).status_code == 200
                fired = prom.firing()
                time.sleep(0.5)
        fired = prom.wait_firing({"AiinfraP99LatencyHigh", "AiinfraDriftShareHigh"}, timeout=5)
        # the conditions that are not true here stay quiet, and every rule evaluates without error
        assert not fired & {"AiinfraErrorRatioHigh", "AiinfraRejectedRatioHigh", "AiinfraPredictionLogWriteFailures"}
        assert "AiinfraModelNotReady" not in fired
        rules = prom.get("/api/v1/rules")["groups"][0]["rules"]
        assert {r["name"]: r["health"] for r in rules} == {r["name"]: "ok" for r in rules}, rules

        # the dashboard names only metrics this server exports (a real scrape)
        scraped = _families(httpx.get(f"{server.url}/metrics").text)
        dash = json.loads((tmp_path / "monitoring" / "grafana-dashboard.json").read_text())
        used = set().union(*(_referenced(t["expr"]) for p in dash["panels"] for t in p["targets"]))
        rule_metrics = set().union(*(_referenced(r["query"]) for r in rules))
        assert used and rule_metrics
        assert (used | rule_metrics) - scraped == set()  # the autoscaling gauge aiinfra_inflight_requests included

        # a replica that goes away: AiinfraModelNotReady (up == 0)
        assert server.stop() == 0
        prom.wait_firing({"AiinfraModelNotReady"}, timeout=30)
    finally:
        server.stop()
        if prom is not None:
            prom.stop()
