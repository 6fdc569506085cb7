"""`aiinfra deploy k8s|kserve|ray` against the real schemas, and the render-time checks."""

from __future__ import annotations

import pytest
import yaml

from aiinfra.deploy.output import read_yaml_docs
from manifest_schemas import validate


def docs_by_kind(out) -> dict[str, dict]:
    found = {}
    for path in sorted(out.glob("*.yaml")):
        for doc in read_yaml_docs(path):
            found[doc["kind"]] = doc
    return found


def server_container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def test_k8s_keda_on_inflight_requests(render):
    out = render("k8s", "server.port=8080", "server.graceful_timeout_s=17", "deploy.autoscaling.target=12")
    kinds = docs_by_kind(out)
    assert set(kinds) == {"Deployment", "Service", "ScaledObject", "PodDisruptionBudget", "ServiceMonitor"}
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        validate(kinds[kind])
    dep = kinds["Deployment"]
    c = server_container(dep)
    assert c["ports"][0]["containerPort"] == 8080
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    # the drain fits: preStop sleep + server.graceful_timeout_s + 5 s to flush the log
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 5 + 17 + 5
    assert c["lifecycle"]["preStop"]["sleep"]["seconds"] == 5
    keys = {e["name"]: e for e in c["env"]}["AIINFRA_API_KEYS"]
    assert keys["valueFrom"]["secretKeyRef"] == {"name": "aiinfra-api-keys", "key": "api-keys"}
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    assert "replicas" not in dep["spec"]  # the autoscaler owns the count
    trigger = kinds["ScaledObject"]["spec"]["triggers"][0]
    assert "aiinfra_inflight_requests" in trigger["metadata"]["query"]
    assert trigger["metadata"]["threshold"] == "12" and trigger["metricType"] == "AverageValue"
    assert kinds["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == kinds["Service"]["spec"]["ports"][0]["name"]
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] == c["ports"][0]["name"]


def test_k8s_hpa_on_cpu_and_fixed_replicas(render):
    kinds = docs_by_kind(render("k8s", "deploy.autoscaling.metric=cpu", "deploy.autoscaling.target=70"))
    hpa = kinds["HorizontalPodAutoscaler"]
    validate(hpa)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    kinds = docs_by_kind(
        render("k8s", "deploy.autoscaling.enabled=false", "deploy.replicas=3", "deploy.autoscaling.metric=queue")
    )
    assert "HorizontalPodAutoscaler" not in kinds and "ScaledObject" not in kinds
    assert kinds["Deployment"]["spec"]["replicas"] == 3
    validate(kinds["Deployment"])


def test_k8s_queue_metric_and_no_keys(render):
    kinds = docs_by_kind(
        render(
            "k8s", "deploy.autoscaling.metric=queue", "server.allow_unauthenticated=true", "deploy.pdb_min_available=0"
        )
    )
    assert "aiinfra_queue_rows" in kinds["ScaledObject"]["spec"]["triggers"][0]["metadata"]["query"]
    assert "PodDisruptionBudget" not in kinds
    assert all(e["name"] != "AIINFRA_API_KEYS" for e in server_container(kinds["Deployment"])["env"])


def test_kserve_inference_service(render):
    out = render("kserve", "server.port=8080", "deploy.scale_target=24", "deploy.max_replicas=6")
    (isvc,) = read_yaml_docs(out / "inferenceservice.yaml")
    validate(isvc)
    p = isvc["spec"]["predictor"]
    assert (p["scaleMetric"], p["scaleTarget"], p["minReplicas"], p["maxReplicas"]) == ("concurrency", 24, 1, 6)
    (c,) = p["containers"]
    assert c["name"] == "kserve-container" and c["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert isvc["metadata"]["annotations"]["prometheus.kserve.io/port"] == "8080"


def test_kserve_schema_catches_a_wrong_field(render):
    """The vendored schema is strict: a misspelt field fails, so passing above means something."""
    out = render("kserve")
    (isvc,) = read_yaml_docs(out / "inferenceservice.yaml")
    isvc["spec"]["predictor"]["scaleTargt"] = 3
    with pytest.raises(AssertionError, match="scaleTargt"):
        validate(isvc)
    (isvc,) = read_yaml_docs(out / "inferenceservice.yaml")
    isvc["spec"]["predictor"]["minReplicas"] = "one"
    with pytest.raises(AssertionError, match="minReplicas"):
        validate(isvc)


def test_ray_service_and_serve_config(render):
    out = render(
        "ray",
        "server.port=8000",
        "server.autoscaling.max_replicas=6",
        "server.autoscaling.target_ongoing_requests=8",
        "server.replica_cpus=0.5",
    )
    (svc,) = read_yaml_docs(out / "rayservice.yaml")
    validate(svc)
    config = yaml.safe_load(svc["spec"]["serveConfigV2"])
    assert config == read_yaml_docs(out / "serve_config.yaml")[0]
    from ray.serve.schema import ServeDeploySchema  # Ray's own schema of a serve config file

    ServeDeploySchema.model_validate(config) if hasattr(ServeDeploySchema, "model_validate") else ServeDeploySchema(
        **config
    )
    (dep,) = config["applications"][0]["deployments"]
    assert dep["autoscaling_config"]["max_replicas"] == 6
    assert dep["autoscaling_config"]["target_ongoing_requests"] == 8
    assert dep["ray_actor_options"]["num_cpus"] == 0.5
    assert config["applications"][0]["import_path"] == "aiinfra.serving.ray_server:app_builder"


@pytest.mark.parametrize(
    ("target", "overrides", "message"),
    [
        ("k8s", ["deploy.port=9000"], "deploy.port: 9000 is not the server's port"),
        (
            "k8s",
            ["server.tls.certfile=/tls/server.pem", "server.tls.keyfile=/tls/server.key"],
            "`aiinfra deploy` mounts no certificates",
        ),
        (
            "kserve",
            ["server.tls.certfile=/tls/server.pem", "server.tls.keyfile=/tls/server.key"],
            "`aiinfra deploy` mounts no certificates",
        ),
        ("kserve", ["server.port=8080", "deploy.port=8000"], "deploy.port: 8000 is not the server's port"),
        ("k8s", ["deploy.probes.readiness_path=/healthz"], "deploy.probes.readiness_path: '/healthz' is not a route"),
        ("k8s", ["deploy.probes.liveness_path=/v2/models/m/ready"], "probes send none: it would answer 401"),
        ("kserve", ["deploy.probes.readiness_path=/admin/reload"], "does not answer GET"),
        (
            "k8s",
            ["deploy.autoscaling.min_replicas=5", "deploy.autoscaling.max_replicas=2"],
            "deploy.autoscaling.min_replicas: is 5, more than max_replicas 2",
        ),
        (
            "kserve",
            ["deploy.min_replicas=3", "deploy.max_replicas=1"],
            "deploy.min_replicas: is 3, more than max_replicas 1",
        ),
        (
            "ray",
            ["server.autoscaling.min_replicas=4", "server.autoscaling.max_replicas=2"],
            "server.autoscaling.min_replicas: is 4",
        ),
        ("k8s", ["deploy.api_keys_secret.name=null"], "deploy.api_keys_secret.name: missing"),
        ("ray", ["deploy.api_keys_secret.name=null"], "deploy.api_keys_secret.name: missing"),
        ("k8s", ["deploy.replicass=3"], "unknown config key 'deploy.replicass'"),
        ("k8s", ["deploy.autoscaling.metric=latency"], "deploy.autoscaling.metric"),
        ("ray", ["server=http"], "deploy.type=ray renders the server=ray settings"),
    ],
)
def test_wrong_settings_fail_at_render_time(
    deploy_project, deploy_plugin, monkeypatch, capsys, tmp_path, target, overrides, message
):
    from aiinfra.deploy.cli import main

    monkeypatch.chdir(deploy_project)
    out = tmp_path / "out"
    rc = main([target, "--out", str(out), f"server.model_uri={deploy_project / 'models' / 'model'}", *overrides])
    err = capsys.readouterr().err
    assert rc != 0
    assert err.startswith("aiinfra: error: ") and message in err, err
    assert "Traceback" not in err
    assert not out.exists()  # nothing half-written
