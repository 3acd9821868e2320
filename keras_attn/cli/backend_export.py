"""Export from any backend: a run trained on JAX or torch exports through TensorFlow.

SavedModel and tf2onnx need the TensorFlow backend, and a process has one backend. So a
process on another backend runs `keras-attn export` in a child process with
`KERAS_BACKEND=tensorflow`: the `.keras` file is backend-neutral, and that child runs the whole
export with its parity battery (TensorFlow Keras == SavedModel == onnxruntime). Back in the
training backend, `parity_with_backend` compares the model as it was trained against the
exported ONNX file on a battery of its own, so parity is reported against the backend that
trained it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from export.artifact.manifest import PARITY_FILENAME
from export.verification.parity import TOLERANCE, effective_tolerance


def export_in_tensorflow(run_dir: Path, out: Path) -> int:
    """Runs `keras-attn export RUN --out OUT` on the TensorFlow backend; returns its exit code.
    Its output goes straight to this process's stdout and stderr."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    command = [sys.executable, "-m", "keras_attn.cli", "export", str(run_dir), "--out", str(out)]
    return subprocess.run(command, env=env, check=False).returncode


def parity_with_backend(model: keras.Model, version_dir: Path, seed: int = 0) -> dict:
    """max |diff| between `model` on this process's backend and the export's `model.onnx`.

    The battery: batch sizes 1 and 4, lengths 1, max_len // 2 and max_len, each unpadded and
    with padding appended (shorter rows in a longer batch). The tolerance is the export's own
    (`parity.json`: the larger of 1e-5 and 3x the model's fp32 floor).

    Returns:
        {"backend", "max_abs_diff", "tolerance", "cases", "ok"}.
    """
    from export import runtime

    predictor = runtime.load(version_dir, variant="portable")
    rng = np.random.default_rng(seed)
    max_len, vocab = predictor.max_len, predictor.vocab_size
    worst, cases = 0.0, 0
    for batch in (1, 4):
        for length in sorted({1, max(1, max_len // 2), max_len}):
            ids = rng.integers(1, vocab, size=(batch, length)).astype("int32")
            if length > 1:  # ragged rows: the tail of all but the first row is padding
                ids[1:, length // 2:] = 0
            expected = keras.ops.convert_to_numpy(model.predict(ids, verbose=0))
            worst = max(worst, float(np.max(np.abs(predictor.predict(ids) - expected))))
            cases += 1
    parity = json.loads((Path(version_dir) / PARITY_FILENAME).read_text(encoding="utf-8"))
    tolerance = effective_tolerance(TOLERANCE, parity.get("fp32_floor"))
    return {"backend": keras.backend.backend(), "max_abs_diff": worst,
            "tolerance": tolerance, "cases": cases, "ok": worst <= tolerance}
