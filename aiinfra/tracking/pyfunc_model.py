"""MLflow "models from code" definition of an aiinfra model.

MLflow stores this file's source (not a pickle) with the model; loading it runs the file and
``load_context`` reads the model directory (state dict loaded with ``weights_only=True``). So
``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work, and nothing is unpickled.

``predict`` takes raw rows: a DataFrame of the model's input columns as the source has them
(strings, booleans, dates, numbers, gaps). MLflow first enforces the logged column signature
(names and types, :func:`aiinfra.tracking.run.model_signature`); then the data contract checks
the rows (one error naming the column, the expected type and the bad value) and the fitted
preprocessing encodes them, exactly as serving and evaluation do. It returns class
probabilities ``[n, classes]`` for a classifier (as before contracts existed) and values in the
target's units ``[n]`` for a regression.

``predict`` is type-hinted with ``np.ndarray``: a hint MLflow accepts and infers no schema from
(the signature comes from the logged example instead), so MLflow neither converts the input nor
prints its "Add type hints to the `predict` method" nudge at every logging and loading.
"""

from typing import Any

import mlflow
import numpy as np
from mlflow.models import set_model

from aiinfra.models.model_dir import Predictor

# no `from __future__ import annotations`: MLflow reads the hints of predict at class creation


def encode_rows(predictor: Predictor, model_input: Any) -> np.ndarray:
    """Raw rows (a DataFrame, or for a model without contract a float matrix) -> encoded float32."""
    if not hasattr(model_input, "columns"):  # a matrix: only a model of plain float columns takes it
        return np.asarray(model_input, dtype=np.float32)
    if predictor.contract is not None:
        frame = predictor.contract.check_frame(model_input)
        return predictor.encode(frame)
    names = [str(c) for c in model_input.columns]
    if set(predictor.features) <= set(names):
        model_input = model_input[predictor.features]
    return model_input.to_numpy(dtype=np.float32)


class AiinfraModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.predictor = Predictor.load(context.artifacts["model"])

    def predict(self, context, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        x = encode_rows(self.predictor, model_input)
        if self.predictor.is_regression:
            return self.predictor.predict_values(x)
        return self.predictor.predict_proba(x)


set_model(AiinfraModel())
