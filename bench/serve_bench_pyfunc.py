"""MLflow "models from code" pyfunc for bench/serve_bench.py: the aiinfra model behind `mlflow models serve`.

The MLflow model's artifacts hold the aiinfra model directory under ``artifacts/model/`` (the layout
the train stage uses), so `aiinfra serve` and `mlflow models serve` load the very same weights.
"""

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class AiinfraPyfunc(PythonModel):
    def load_context(self, context):
        from aiinfra.models.model_dir import Predictor

        self.predictor = Predictor.load(context.artifacts["model"])

    def predict(self, context, model_input, params=None):
        return self.predictor.predict(np.asarray(model_input, dtype=np.float32))


mlflow.models.set_model(AiinfraPyfunc())
