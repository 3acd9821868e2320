"""export/savedmodel.py: the TF Serving SavedModel: its signature, its input checks, and
serving without keras_attn (or Keras) importable."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from export_cases import BLOCK_IMPORTS, CLASSIFIER, LANGUAGE_MODEL, exported, run_python

from export.endpoint import keras_runtime
from export.parity import TOLERANCE, diff_stats

# The wording of keras_attn/token_checks.py and export/inputs.py.
LENGTH = ("Sequence length must be between 1 and max_len=16, the number of learned position "
          "vectors. Received: ")
RANGE = "token_ids must lie in [0, vocab_size=50). Received: "


@pytest.fixture(scope="module")
def serving_default():
    _, result = exported(CLASSIFIER)
    loaded = tf.saved_model.load(str(result.path))
    return loaded, loaded.signatures["serving_default"]


@pytest.mark.parametrize("name, logits_shape", [(CLASSIFIER, [None, 3]),
                                                (LANGUAGE_MODEL, [None, None, 50])])
def test_signature_names_and_shapes(name, logits_shape):
    signature = tf.saved_model.load(str(exported(name)[1].path)).signatures
    assert list(signature) == ["serving_default"]
    args, kwargs = signature["serving_default"].structured_input_signature
    assert args == () and kwargs == {
        "token_ids": tf.TensorSpec([None, None], tf.int32, name="token_ids")}
    outputs = signature["serving_default"].structured_outputs
    assert list(outputs) == ["logits"]
    assert outputs["logits"].dtype == tf.float32
    assert outputs["logits"].shape.as_list() == logits_shape


def test_saved_model_cli_show_all_lists_the_named_signature():
    """`saved_model_cli show --dir <version> --all`, as TF Serving's docs inspect a model."""
    path = exported(CLASSIFIER)[1].path
    shown = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
         "--dir", str(path), "--all"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert shown.returncode == 0, shown.stderr
    # --all prints every signature of every tag set; ours is the one serving signature, so
    # the serving block runs from its header to the next "signature_def[" (or the end).
    signatures = shown.stdout.split("signature_def['")
    serving = [block for block in signatures if block.startswith("serving_default']")]
    assert len(serving) == 1, shown.stdout
    block = serving[0]
    inputs, outputs = block.split("The given SavedModel SignatureDef contains the following "
                                  "output(s):")
    assert "inputs['token_ids'] tensor_info:" in inputs
    assert "dtype: DT_INT32" in inputs and "shape: (-1, -1)" in inputs
    assert "outputs['logits'] tensor_info:" in outputs
    assert "dtype: DT_FLOAT" in outputs and "shape: (-1, 3)" in outputs
    assert "Method name is: tensorflow/serving/predict" in outputs


@pytest.mark.parametrize("token_ids, fragments", [
    (np.ones((2, 17), np.int32), [LENGTH + "a sequence longer than 16", "[17]"]),
    (np.ones((2, 0), np.int32), [LENGTH + "sequence length 0"]),
    (np.array([[1, 50]], np.int32), [RANGE + "an id >= 50"]),
    (np.array([[3, -1]], np.int32), [RANGE + "a negative id"]),
])
def test_signature_rejects_bad_ids_naming_the_limit(serving_default, token_ids, fragments):
    _, signature = serving_default
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        signature(token_ids=tf.constant(token_ids))
    for fragment in fragments:
        assert fragment in error.value.message


def test_signature_accepts_full_length_and_padded_batches(serving_default):
    _, signature = serving_default
    ids = np.zeros((3, 16), np.int32)
    ids[:, 0], ids[0] = 7, 9
    assert signature(token_ids=tf.constant(ids))["logits"].shape == (3, 3)


SERVE_WITHOUT_KERAS = BLOCK_IMPORTS + '''
import json, numpy as np, tensorflow as tf
requests = json.loads(sys.argv[2])
served = {}
for path, ids in requests.items():
    signature = tf.saved_model.load(path).signatures["serving_default"]
    served[path] = signature(token_ids=tf.constant(ids, tf.int32))["logits"].numpy().tolist()
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({"logits": served, "leaked": leaked}))
'''


def test_savedmodel_serves_where_keras_attn_and_keras_cannot_be_imported():
    ids = [[5, 6, 7, 8], [9, 3, 0, 0]]
    models = {str(exported(name)[1].path): exported(name)[0]
              for name in (CLASSIFIER, LANGUAGE_MODEL)}
    done = run_python(SERVE_WITHOUT_KERAS, "keras_attn,keras,export",
                      json.dumps({path: ids for path in models}))
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.splitlines()[-1])
    assert served["leaked"] == []
    for path, model in models.items():
        expected = keras_runtime(model)(np.array(ids, np.int32))
        max_abs, _ = diff_stats(expected, np.array(served["logits"][path], np.float32))
        assert max_abs <= TOLERANCE, path
