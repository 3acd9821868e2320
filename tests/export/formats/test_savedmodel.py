"""export/formats/savedmodel.py: the TF Serving SavedModel: its signature, its input checks, and
serving without keras_attn (or Keras) importable."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from export_cases import BLOCK_IMPORTS, CLASSIFIER, LANGUAGE_MODEL, exported, run_python

from export.formats.tf_function import keras_runtime
from export.verification.parity import TOLERANCE, diff_stats

# The wording of keras_attn/layers/token_checks.py and export/artifact/token_ids.py.
LENGTH = ("Sequence length must be between 1 and max_len=16, the number of learned position "
          "vectors. Received: ")
RANGE = "token_ids must lie in [0, vocab_size=50). Received: "
PADDING_ONLY = "Each sequence needs at least one non-padding id (padding is id 0). Received: "


SIGNATURE_DTYPES = {"serving_default": tf.int32, "serving_int64": tf.int64}


@pytest.fixture(scope="module")
def loaded_classifier():
    _, result = exported(CLASSIFIER)
    return tf.saved_model.load(str(result.path))


@pytest.fixture(scope="module", params=sorted(SIGNATURE_DTYPES))
def signature_and_dtype(request, loaded_classifier):
    """Each signature of the classifier, with the id dtype it takes."""
    return loaded_classifier.signatures[request.param], SIGNATURE_DTYPES[request.param]


@pytest.mark.parametrize("name, logits_shape", [(CLASSIFIER, [None, 3]),
                                                (LANGUAGE_MODEL, [None, None, 50])])
def test_signature_names_and_shapes(name, logits_shape):
    signatures = tf.saved_model.load(str(exported(name)[1].path)).signatures
    # A language model also has its cached decoding step
    # (tests/export/formats/test_savedmodel_decoder.py).
    decoder_step = ["decoder_step"] if name == LANGUAGE_MODEL else []
    assert sorted(signatures) == sorted([*SIGNATURE_DTYPES, *decoder_step])
    for signature_name, dtype in SIGNATURE_DTYPES.items():
        args, kwargs = signatures[signature_name].structured_input_signature
        assert args == () and kwargs == {
            "token_ids": tf.TensorSpec([None, None], dtype, name="token_ids")}
        outputs = signatures[signature_name].structured_outputs
        assert list(outputs) == ["logits"]
        assert outputs["logits"].dtype == tf.float32
        assert outputs["logits"].shape.as_list() == logits_shape


def test_int64_signature_gives_the_logits_of_int32():
    """What a gRPC client sends with tf.make_tensor_proto(np.array(...)): int64."""
    model, result = exported(CLASSIFIER)
    signatures = tf.saved_model.load(str(result.path)).signatures
    ids = np.array([[5, 6, 7, 8], [9, 3, 0, 0]])
    assert ids.dtype == np.int64 and tf.make_tensor_proto(ids).dtype == tf.int64.as_datatype_enum
    as_int64 = signatures["serving_int64"](token_ids=tf.constant(ids))["logits"].numpy()
    as_int32 = signatures["serving_default"](
        token_ids=tf.constant(ids, tf.int32))["logits"].numpy()
    np.testing.assert_array_equal(as_int64, as_int32)
    assert diff_stats(keras_runtime(model)(ids), as_int64)[0] <= TOLERANCE


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
    # --all prints every signature of every tag set; each block runs from its header to the
    # next "signature_def[" (or the end).
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
    int64 = [block for block in signatures if block.startswith("serving_int64']")]
    assert len(int64) == 1 and "dtype: DT_INT64" in int64[0], shown.stdout


@pytest.mark.parametrize("token_ids, fragments", [
    (np.ones((2, 17)), [LENGTH + "a sequence longer than 16", "[17]"]),
    (np.ones((2, 0)), [LENGTH + "sequence length 0"]),
    (np.array([[1, 50]]), [RANGE + "an id >= 50"]),
    (np.array([[3, -1]]), [RANGE + "a negative id"]),
    (np.array([[3, 4], [0, 0]]), [PADDING_ONLY + "a sequence of padding only"]),
])
def test_signature_rejects_bad_ids_naming_the_limit(signature_and_dtype, token_ids, fragments):
    signature, dtype = signature_and_dtype
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        signature(token_ids=tf.constant(token_ids, dtype))
    for fragment in fragments:
        assert fragment in error.value.message


def test_int64_signature_checks_ids_before_any_cast(loaded_classifier):
    signature = loaded_classifier.signatures["serving_int64"]
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        signature(token_ids=tf.constant([[2**32 + 5, 7]], tf.int64))  # 5 once narrowed
    assert RANGE + "an id >= 50" in error.value.message


def test_signature_accepts_full_length_and_padded_batches(signature_and_dtype):
    signature, dtype = signature_and_dtype
    ids = np.zeros((3, 16))
    ids[:, 0], ids[0] = 7, 9
    assert signature(token_ids=tf.constant(ids, dtype))["logits"].shape == (3, 3)


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
