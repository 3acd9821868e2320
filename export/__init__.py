"""Export keras_attn models to TensorFlow SavedModel (TF Serving) and ONNX (onnxruntime), with
parity against Keras proven at export time and re-checkable later.

    export_model(model, out_dir)   -> ExportResult   a verified version folder <out_dir>/<n>/
    verify(version_dir)            -> VerifyReport   integrity + parity of such a folder
    runtime.load(version_dir)      -> Predictor      onnxruntime inference, no TensorFlow

Lazy: importing this package imports nothing else. Each name imports its module on first use,
so the serving side (`export.runtime`, `export.serving`, `export.artifact`) never loads the
exporter, TensorFlow or Keras (the import rules are in pyproject.toml, `[tool.importlinter]`).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["runtime"],
    submod_attrs={
        "exporter": ["ExportResult", "ParityError", "export_model"],
        "verification.parity": ["PairResult", "ParityReport"],
        "verification.verifier": ["VerifyReport", "verify"],
    },
)
