"""Everything that answers a prediction: ``emorec.load`` and the ``Predictor``, the
raw-image MLflow pyfunc, ONNX export and its runtime, int8 quantization, files and folders.

One contract for every model that answers: ``classes`` (names, in output order),
``prep`` (the ``Preprocessing`` it was trained with) and ``probabilities(crops)``, class
probabilities (N, K) of uint8 (N, S, S, C) crops already prepared by ``prep``. The
``Predictor`` finds and crops faces, prepares them and asks the model; the pyfunc
prepares a request's images itself. No path changes a loaded model.
"""

from __future__ import annotations

import pkgutil

# A logged model carries part of this package only (the pyfuncs): the rest comes from any
# other emorec on the path, as for ``emorec`` itself (see its ``__path__``).
__path__ = pkgutil.extend_path(__path__, __name__)

__all__ = ["Prediction", "Predictor", "load"]


def __getattr__(name: str):
    # Lazy: the pyfunc is loaded by MLflow without the predictor's imports.
    if name in __all__:
        from emorec.serving import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'emorec.serving' has no attribute {name!r}")
