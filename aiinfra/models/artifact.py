"""Deprecated name of :mod:`aiinfra.models.model_dir` (the model directory format).

MLflow models logged by aiinfra 0.1 carry a ``pyfunc_model.py`` that imports this module, so it
stays importable for them (``mlflow.pyfunc.load_model``, ``mlflow models serve``). New code imports
:mod:`aiinfra.models.model_dir`.
"""

import warnings

from aiinfra.models.model_dir import *  # noqa: F403
from aiinfra.models.model_dir import InferenceModel, Predictor, Standardize, build_network, save_model  # noqa: F401

warnings.warn("aiinfra.models.artifact is deprecated: import aiinfra.models.model_dir", FutureWarning, stacklevel=2)
