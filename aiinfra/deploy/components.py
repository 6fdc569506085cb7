"""Deploy targets and the Ray Serve runtime, as import strings (``aiinfra/builtin.py`` registers
them with the other built-ins). Listing them imports nothing heavy."""

COMPONENTS = [
    (
        "deploy",
        "image",
        "aiinfra.deploy.image:render",
        "aiinfra.deploy.schema:ImageDeployConfig",
        "an OCI build context: Dockerfile, locked dependencies, the wheel, the model baked in or pulled",
    ),
    (
        "deploy",
        "k8s",
        "aiinfra.deploy.k8s:render",
        "aiinfra.deploy.schema:K8sDeployConfig",
        "Kubernetes Deployment, Service, HPA or KEDA, PDB, ServiceMonitor, alert rules, dashboard",
    ),
    (
        "deploy",
        "kserve",
        "aiinfra.deploy.kserve:render",
        "aiinfra.deploy.schema:KServeDeployConfig",
        "a KServe InferenceService with the aiinfra server as its V2 predictor container",
    ),
    (
        "deploy",
        "ray",
        "aiinfra.deploy.ray_service:render",
        "aiinfra.deploy.schema:RayDeployConfig",
        "a Ray Serve config file and a KubeRay RayService (server=ray)",
    ),
    (
        "server",
        "ray",
        "aiinfra.serving.ray_server:serve_ray",
        "aiinfra.serving.ray_schema:RayServerConfig",
        "the HTTP server's app in each replica of an autoscaled Ray Serve deployment (aiinfra[ray])",
    ),
]
