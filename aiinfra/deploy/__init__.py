"""``aiinfra deploy``: container image, Kubernetes, KServe and Ray Serve files rendered from the
project's config, with Prometheus rules and a Grafana dashboard (docs/deploying.md)."""
