"""MLflow "models from code" definition of an aiinfra model.

MLflow stores this file's source (not a pickle) with the model; loading it runs the file and
``load_context`` reads the model directory (state dict loaded with ``weights_only=True``). So
``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work, and nothing is unpickled.

``predict`` is type-hinted with ``np.ndarray``: a hint MLflow accepts and infers no schema from
(its tensor signature comes from the logged example instead), so MLflow neither converts the input
nor prints its "Add type hints to the `predict` method" nudge at every logging and loading. A
DataFrame with named feature columns is still accepted: MLflow passes it through unchanged.
"""

from typing import Any

import mlflow
import numpy as np
from mlflow.models import set_model

from aiinfra.models.model_dir import Predictor

# no `from __future__ import annotations`: MLflow reads the hints of predict at class creation


class AiinfraModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.predictor = Predictor.load(context.artifacts["model"])

    def predict(self, context, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        if hasattr(model_input, "columns"):  # a DataFrame with named feature columns
            names = [str(c) for c in model_input.columns]
            if set(self.predictor.features) <= set(names):
                model_input = model_input[self.predictor.features]
            model_input = model_input.to_numpy()
        return self.predictor.predict_proba(np.asarray(model_input, dtype=np.float32))


set_model(AiinfraModel())
