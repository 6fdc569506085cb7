"""The ceiling for bench/serve_bench.py: the same model called inline in a bare Starlette endpoint.

Same HTTP stack as `aiinfra serve` (uvicorn + httptools + uvloop, orjson), none of its features
(no batching, validation beyond the shape, metrics, prediction log, auth or access log).
``BARE_EMPTY=1`` answers without touching the model (the HTTP stack alone).
"""

import os

import numpy as np
import orjson
import torch
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from aiinfra.models.model_dir import Predictor

torch.set_num_threads(1)  # the fastest setting for a tiny model (as `aiinfra serve` uses by default)
predictor = Predictor.load(os.environ["BARE_MODEL_DIR"])
EMPTY = os.environ.get("BARE_EMPTY") == "1"


async def infer(request):
    body = orjson.loads(await request.body())
    if EMPTY:
        return Response(b'{"outputs":[]}', media_type="application/json")
    t = body["inputs"][0]
    x = np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])
    labels = predictor.predict(x)
    return Response(
        orjson.dumps({"outputs": [{"name": "label", "data": labels.tolist()}]}), media_type="application/json"
    )


app = Starlette(routes=[Route("/v2/models/{name}/infer", infer, methods=["POST"])])
