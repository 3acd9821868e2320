"""onnxruntime only: the predictor, the cached decoder step, sampling and generation. Never imports
TensorFlow, Keras or keras_attn.

    from export import runtime
    predictor = runtime.load("saved_models/reviews/1")   # -> export.runtime.predictor.Predictor

Lazy: `load`, `Predictor`, `OPTIMIZATION_LEVELS` and `VARIANTS` import `export.runtime.predictor`
(and so onnxruntime) on first use.
"""

import importlib

_LAZY = {name: "export.runtime.predictor"
         for name in ("OPTIMIZATION_LEVELS", "VARIANTS", "Predictor", "load", "onnx_path_of")}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'export.runtime' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
