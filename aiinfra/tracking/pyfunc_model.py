"""MLflow "models from code" definition of an aiinfra model.

MLflow stores this file's source (not a pickle) with the model; loading it runs the file and
``load_context`` reads the model directory (state dict loaded with ``weights_only=True``). So
``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work, and nothing is unpickled.
"""

from __future__ import annotations

import warnings

import mlflow
import numpy as np
from mlflow.models import set_model

from aiinfra.models.model_dir import Predictor

# The model takes float32 tensors on purpose (a tensor signature is what makes MLflow's own
# scoring fast); MLflow's nudge towards type-hinted DataFrame inputs does not apply.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")


class AiinfraModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.predictor = Predictor.load(context.artifacts["model"])

    def predict(self, context, model_input, params=None):  # noqa: D102 - MLflow's interface
        if hasattr(model_input, "columns"):  # a DataFrame with named feature columns
            names = [str(c) for c in model_input.columns]
            if set(self.predictor.features) <= set(names):
                model_input = model_input[self.predictor.features]
            model_input = model_input.to_numpy()
        return self.predictor.predict_proba(np.asarray(model_input, dtype=np.float32))


set_model(AiinfraModel())
