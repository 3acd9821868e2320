"""Export keras_attn models to TensorFlow SavedModel (TF Serving) and ONNX (onnxruntime), with
parity against Keras proven at export time and re-checkable later.

    export_model(model, out_dir)   -> ExportResult   a verified version folder <out_dir>/<n>/
    verify(version_dir)            -> VerifyReport   integrity + parity of such a folder
    runtime.load(version_dir)      -> Predictor      onnxruntime inference, no TensorFlow

Lazy: importing this package imports nothing else. Each name imports its module on first use,
so the serving side (`export.runtime`, `export.serving`, `export.artifact`) never loads the
exporter, TensorFlow or Keras (the import rules are in pyproject.toml, `[tool.importlinter]`).
"""

import importlib

_LAZY = {
    "ExportResult": "export.exporter",
    "ParityError": "export.exporter",
    "export_model": "export.exporter",
    "PairResult": "export.verification.parity",
    "ParityReport": "export.verification.parity",
    "VerifyReport": "export.verification.verifier",
    "verify": "export.verification.verifier",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'export' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
