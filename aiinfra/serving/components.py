"""Serving components registered by aiinfra's built-in plugin (import strings only)."""

COMPONENTS = [
    (
        "server",
        "http",
        "aiinfra.serving.server:serve",
        "aiinfra.serving.schema:HttpServerConfig",
        "HTTP server: Open Inference Protocol (KServe V2) and MLflow /invocations",
    ),
    (
        "server",
        "batch",
        "aiinfra.serving.scoring:score_file",
        "aiinfra.serving.schema:BatchServerConfig",
        "score a Parquet/CSV file into an output file",
    ),
    (
        "runtime",
        "torch",
        "aiinfra.serving.torch_runtime:load",
        None,
        "an aiinfra model directory on PyTorch (weights.pt + model.json)",
    ),
    (
        "kms",
        "env",
        "aiinfra.serving.log_crypto:EnvKmsClient",
        None,
        "master keys of the encrypted prediction log from an environment variable",
    ),
]
