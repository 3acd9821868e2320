"""Version folders written before the sub-package redesign (tests/fixtures/version_folders/,
exported by commit ab4e85b) still load, verify and answer exactly as they did: the manifest's
checksums, the parity battery against their own `model.keras` (which must load with today's
module paths), `predict` on onnxruntime and `generate` with the cached decoder step.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from repo_paths import FIXTURES

from export import verify

OLD = FIXTURES / "version_folders"


@pytest.fixture(scope="module")
def old_folders(tmp_path_factory):
    """A copy of the fixtures: nothing a test runs may change the committed files."""
    copy = tmp_path_factory.mktemp("old") / "version_folders"
    shutil.copytree(OLD, copy)
    return copy


def cli(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "keras_attn.cli", *args], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("name", ["languages", "lm"])
def test_an_old_version_folder_verifies(old_folders, name):
    report = verify(old_folders / name / "1")
    assert report.ok, report


def test_an_old_model_keras_loads_with_todays_module_paths(old_folders):
    import keras_attn

    model = keras_attn.load_model(old_folders / "languages" / "1" / "model.keras")
    # The file names the old module (keras_attn.positional_embedding); the layer registered
    # under "keras_attn>PositionalEmbedding" is today's class.
    assert type(model.get_layer("embedding")).__module__ == "keras_attn.layers.positional_embedding"
    assert model.predict(np.array([[5, 6, 7]]), verbose=0).shape == (1, 12)


def test_an_old_classifier_predicts_what_it_predicted(old_folders):
    expected = json.loads((OLD / "languages" / "predict.json").read_text(encoding="utf-8"))
    texts = [row["text"] for row in expected]
    answered = json.loads(cli("predict", str(old_folders / "languages" / "1"), *texts, "--json"))
    assert [row["label"] for row in answered] == [row["label"] for row in expected]
    for got, want in zip(answered, expected, strict=True):
        assert got["probabilities"].keys() == want["probabilities"].keys()
        # The CLI prints 6 decimals, and the softmax is now taken in float64 (it was float32):
        # the same logits round to figures one unit of the last place apart at most (1e-6),
        # plus float32's rounding of a probability below 1 (6e-8).
        np.testing.assert_allclose(list(got["probabilities"].values()),
                                   list(want["probabilities"].values()), rtol=0, atol=1.1e-6)


def test_an_old_language_model_generates_what_it_generated(old_folders):
    expected = json.loads((OLD / "lm" / "generate.json").read_text(encoding="utf-8"))
    answered = json.loads(cli("generate", str(old_folders / "lm" / "1"), "Love is",
                              "--max-new-tokens", "8", "--json"))
    assert answered == expected


def test_an_old_export_has_no_attention_onnx_and_says_so(old_folders):
    from export.runtime.attention import load_attention

    with pytest.raises(FileNotFoundError, match="an export made before attention.onnx existed: "
                                                "export it again"):
        load_attention(old_folders / "languages" / "1")
