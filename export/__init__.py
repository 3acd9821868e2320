"""Export keras_attn models to TensorFlow SavedModel (TF Serving) and ONNX (onnxruntime), with
parity against Keras proven at export time and re-checkable later.

    export_model(model, out_dir)   -> ExportResult   a verified version folder <out_dir>/<n>/
    verify(version_dir)            -> VerifyReport   integrity + parity of such a folder
    runtime.load(version_dir)      -> Predictor      onnxruntime inference, no TensorFlow

Importing this package imports neither TensorFlow nor Keras: they are imported inside the
functions that export or verify, so the serving side (`export.runtime`, `export.inputs`,
`export.tokenizer`) stays free of them.
"""

from export.exporter import ExportResult, ParityError, export_model
from export.parity import PairResult, ParityReport
from export.verifier import VerifyReport, verify

__all__ = [
    "ExportResult",
    "PairResult",
    "ParityError",
    "ParityReport",
    "VerifyReport",
    "export_model",
    "verify",
]
