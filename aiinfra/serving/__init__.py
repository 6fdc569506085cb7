"""Serving: the HTTP server (Open Inference Protocol + MLflow /invocations) and batch scoring."""
