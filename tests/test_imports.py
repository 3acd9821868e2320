"""What an import costs, each in a fresh interpreter (a process imports a module once): a layer
loads neither the exporter nor onnxruntime, `keras-attn --help` loads neither TensorFlow nor
onnxruntime, and `import export` loads nothing until a name is used.

The import rules between sub-packages are import-linter contracts in pyproject.toml, run by
`lint-imports` in CI; these tests check what those contracts cannot see: what really ends up in
`sys.modules` when a user runs the line.
"""

import json
import os
import subprocess
import sys

import pytest

# The models may use the runtime's NumPy sampling (export.runtime.sampling), nothing else of it.
EXPORT_SIDE = ("onnxruntime", "tf2onnx", "onnx", "export.exporter", "export.formats",
               "export.verification", "export.runtime.predictor", "export.runtime.decoder_step",
               "export.serving")
HEAVY = ("tensorflow", "onnxruntime", "tf2onnx", "keras", "jax", "torch")


def loaded_after(code: str) -> list[str]:
    """The modules in `sys.modules` after `code` runs in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def matching(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def test_a_layer_loads_neither_the_exporter_nor_onnxruntime():
    modules = loaded_after("import keras_attn\nkeras_attn.PositionalEmbedding")
    assert "keras_attn.layers.positional_embedding" in modules
    assert matching(modules, EXPORT_SIDE) == []


def test_a_model_builder_loads_neither_the_exporter_nor_onnxruntime():
    modules = loaded_after("import keras_attn as ka\n"
                           "ka.build_classifier(ka.ModelConfig(vocab_size=50, max_len=8, "
                           "d_model=8, num_heads=2, ff_dim=16, num_layers=1, num_classes=2))")
    assert matching(modules, EXPORT_SIDE) == []


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["serve", "--help"],
                                  ["predict", "--help"], ["train-lm", "--help"]])
def test_cli_help_loads_neither_tensorflow_nor_onnxruntime(argv):
    modules = loaded_after("import sys\nfrom keras_attn.cli.main import main\n"
                           f"try:\n    main({argv!r})\nexcept SystemExit as done:\n"
                           "    assert done.code == 0, done.code")
    assert "keras_attn.cli.main" in modules
    assert matching(modules, HEAVY) == []


def test_the_console_script_help_runs(tmp_path):
    """`python -m keras_attn.cli --help`, the same entry point as the `keras-attn` script."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "keras_attn.cli", "--help"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("usage: keras-attn")
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")]
    assert "keras_attn.cli.main" in imported
    assert matching(imported, HEAVY) == []


def test_import_export_loads_nothing_until_a_name_is_used():
    modules = loaded_after("import export\nfrom export import runtime")
    assert matching(modules, HEAVY + ("export.exporter", "export.verification")) == []
    modules = loaded_after("from export import export_model, verify, runtime\nruntime.load")
    assert "export.exporter" in modules and "export.runtime.predictor" in modules
