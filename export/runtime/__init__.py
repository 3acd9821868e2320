"""onnxruntime only: the predictor, the cached decoder step, sampling and generation. Never imports
TensorFlow, Keras or keras_attn.

    from export import runtime
    predictor = runtime.load("saved_models/reviews/1")   # -> export.runtime.predictor.Predictor

Lazy: `load`, `Predictor`, `OPTIMIZATION_LEVELS` and `VARIANTS` import `export.runtime.predictor`
(and so onnxruntime) on first use.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={"predictor": ["OPTIMIZATION_LEVELS", "VARIANTS", "Predictor", "load",
                                "onnx_path_of"]},
)
