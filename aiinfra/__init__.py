"""aiinfra: a declarative, pluggable framework for the whole life of an ML model.

Importing this package is cheap on purpose: nothing here imports torch, lightning, mlflow or
evidently. Heavy modules are imported inside the functions that use them.
"""

__version__ = "0.1.0"

#: Version of the plugin hook API. A plugin declares the range it supports
#: (``AIINFRA_API = ">=1.0,<2"`` in its plugin module); minor versions only add hooks, arguments or helpers.
API_VERSION = "1.2"
