"""Exported models shared by the export tests: each configuration is built and exported once
per test session (an export takes seconds), into a temporary folder removed at exit.

Twelve configurations cover every (model kind, activation, pre-/post-norm) combination once.
The first four are what most tests use, and the parity tests also run them on hypothesis-drawn
batches (`DRAWN_CASES`). The other eight, two of them with two blocks stacked, are checked by
the battery `export_model` runs (20 batches: Keras against model.keras, the SavedModel and
onnxruntime at two optimization levels) and by the ONNX graph checks; an export takes 3-5 s,
which is why they are not also run on drawn batches.
`exported_confident` adds one classifier whose predictions int8 cannot flip, so that its
export always ships `model.int8.onnx`.
Tests must not modify these folders: copy one first (`copy_version`).
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

import export
import keras_attn as ka

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Case:
    """One exported configuration: which builder, and the config fields that vary."""

    builder: Callable[[ka.ModelConfig], keras.Model]
    activation: str
    norm_first: bool
    num_layers: int = 1

    @property
    def kind(self) -> str:
        return self.builder.__name__.removeprefix("build_")


CLASSIFIER = "classifier-relu-post"
LANGUAGE_MODEL = "language_model-gelu_tanh-post"
CASES = {
    CLASSIFIER: Case(ka.build_classifier, "relu", False),
    "classifier-gelu-pre": Case(ka.build_classifier, "gelu", True),
    LANGUAGE_MODEL: Case(ka.build_language_model, "gelu_tanh", False),
    "language_model-relu-pre": Case(ka.build_language_model, "relu", True),
    # The other eight combinations, exported once each; two of them stack two blocks.
    "classifier-relu-pre": Case(ka.build_classifier, "relu", True),
    "classifier-gelu-post": Case(ka.build_classifier, "gelu", False),
    "classifier-gelu_tanh-post": Case(ka.build_classifier, "gelu_tanh", False),
    "classifier-gelu_tanh-pre-2layers": Case(ka.build_classifier, "gelu_tanh", True, 2),
    "language_model-relu-post": Case(ka.build_language_model, "relu", False),
    "language_model-gelu-post-2layers": Case(ka.build_language_model, "gelu", False, 2),
    "language_model-gelu-pre": Case(ka.build_language_model, "gelu", True),
    "language_model-gelu_tanh-pre": Case(ka.build_language_model, "gelu_tanh", True),
}
DRAWN_CASES = (CLASSIFIER, "classifier-gelu-pre", LANGUAGE_MODEL, "language_model-relu-pre")


def tiny_config(activation: str = "relu", norm_first: bool = False,
                num_layers: int = 1) -> ka.ModelConfig:
    return ka.ModelConfig(vocab_size=50, max_len=16, d_model=16, num_heads=2, ff_dim=32,
                          num_layers=num_layers, num_classes=3, dropout=0.0,
                          activation=activation, norm_first=norm_first)


def case_config(name: str) -> ka.ModelConfig:
    case = CASES[name]
    return tiny_config(case.activation, case.norm_first, case.num_layers)


@functools.cache
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="keras-attn-export-tests-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def build_model(name: str) -> keras.Model:
    """The model of case `name`, with seeded (so reproducible) random weights."""
    keras.utils.set_random_seed(list(CASES).index(name))
    return CASES[name].builder(case_config(name))


@functools.cache
def exported(name: str) -> tuple[keras.Model, export.ExportResult]:
    """(the Keras model, its export as version 1 of `<tmp>/<name>`), made once per session."""
    model = build_model(name)
    with warnings.catch_warnings():  # int8 left out of a random tiny model: tested on its own
        warnings.simplefilter("ignore", RuntimeWarning)
        return model, export.export_model(model, _root() / name)


@functools.cache
def exported_confident() -> tuple[keras.Model, export.ExportResult]:
    """The CLASSIFIER case's model with an output bias that outweighs its logits (every
    prediction is class 0 by a wide margin), exported. Random tiny models have near-tied
    logits, so whether int8 keeps 99% of their argmaxes depends on the CPU's int8 kernels;
    this one's int8 file ships on any machine."""
    model = build_model(CLASSIFIER)
    weights = model.get_weights()
    weights[-1] = np.array([8.0, 0.0, 0.0], np.float32)  # the output layer's bias
    model.set_weights(weights)
    return model, export.export_model(model, _root() / "classifier-confident")


def drift(monkeypatch, runtime_name: str, by: float = 1e-3) -> None:
    """Makes the exporter's runtime `runtime_name` (e.g. "onnxruntime (all)") return logits
    off by `by`, as a faulty conversion would."""
    from export import exporter

    load_runtimes = exporter.load_runtimes

    def drifting_runtimes(folder):
        runtimes = load_runtimes(folder)
        exact = runtimes[runtime_name]
        runtimes[runtime_name] = lambda ids: exact(ids) + np.float32(by)
        return runtimes

    monkeypatch.setattr(exporter, "load_runtimes", drifting_runtimes)


def copy_version(name: str, destination: Path) -> Path:
    """A private copy of case `name`'s model folder (holding version 1); returns the copy."""
    _, result = exported(name)
    shutil.copytree(result.path.parent, destination)
    return destination


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter with the repository importable; TF kept quiet."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=timeout)


# Prepended to subprocess code: the top-level packages named (comma-separated) in sys.argv[1]
# are found (TensorFlow probes for keras with importlib.util.find_spec) but fail to import.
BLOCK_IMPORTS = '''
import importlib.abc, importlib.machinery, sys
BLOCKED = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, self, origin="<blocked>")
        return None
    def create_module(self, spec):
        raise ImportError(f"{spec.name} is blocked in this test")
    def exec_module(self, module):
        raise ImportError(f"{module.__name__} is blocked in this test")
sys.meta_path.insert(0, Blocker())
'''
