"""The layers and both models on every Keras backend: the layer harness, the NumPy-reference
tests and tests/models/test_backend_checks.py run in a subprocess per backend with `KERAS_BACKEND`
set (a process picks its backend once, at `import keras`).

A backend that is not installed is skipped with the reason and the command that installs it;
CI installs all three. The suite's own process runs everything on its backend (TensorFlow
unless `KERAS_BACKEND` says otherwise), so that backend is not run twice.
"""

import importlib.util
import os
import subprocess
import sys

import keras
import pytest
from repo_paths import TESTS

ROOT = TESTS.parent
BACKENDS = ("tensorflow", "jax", "torch")
# The layer harness, every NumPy-reference test, padding invariance, causality, the id checks.
PER_BACKEND = [
    "models/test_backend_checks.py",
    "layers/test_layers.py",
    "layers/test_positional_embedding.py",
    "layers/test_attention.py",
    "layers/test_block.py",
    "layers/test_feed_forward.py",
    "models/test_attention_maps.py",
    "models/test_builders.py",
]


def installed(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


def run_tests(backend: str, files: list[str], keyword: str | None = None,
              timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    # -n 0: one process per backend; the suite's own workers already use the cores.
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
               "-p", "backend_plugin", "-W", "ignore::UserWarning", *files]
    if keyword:
        command += ["-k", keyword]
    return subprocess.run(command, cwd=TESTS, env=env, capture_output=True, text=True,
                          timeout=timeout)


# The suite's own process runs PER_BACKEND on its backend already; the others run here.
OTHER_BACKENDS = [backend for backend in BACKENDS if backend != keras.backend.backend()]


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_layers_and_models_pass_on_the_backend(backend):
    if not installed(backend):
        pytest.skip(f"the {backend} backend is not installed: pip install 'keras-attn[{backend}]'")
    result = run_tests(backend, PER_BACKEND)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, f"{backend}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    assert " passed" in summary and "failed" not in summary, summary
