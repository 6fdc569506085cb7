"""Serving: the HTTP server (Open Inference Protocol + MLflow /invocations) and batch scoring.

Modules, from the config inwards:

* ``schema``: the server config schemas and their rules (import-light: validation uses it)
* ``components``: what aiinfra registers (servers ``http``, ``batch``; runtime ``torch``)
* ``runtime``: the serving runtime contract (``ServedModel``, ``ModelLoader``); ``torch_runtime``
* ``server``: ``server=http``: processes and uvicorn; ``scoring``: ``server=batch``
* ``routes``: the endpoint table; ``app``: the Gate (auth, fast path, metrics) and the app;
  ``handlers``: the Starlette endpoints; ``predict``: the prediction fast path; ``openapi``
* ``state``: what one process's handlers share; ``batcher``: dynamic batching; ``reload``: hot
  reload; ``protocol``: wire formats; ``auth``, ``metrics``, ``predlog``, ``feedback``
"""
