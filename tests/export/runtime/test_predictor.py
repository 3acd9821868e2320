"""export/runtime/predictor.py: onnxruntime inference with checked inputs, never importing
TensorFlow."""

import json
import re
import shutil

import numpy as np
import onnx
import pytest
from export_cases import (
    BLOCK_IMPORTS,
    CLASSIFIER,
    LANGUAGE_MODEL,
    exported,
    exported_confident,
    run_python,
)
from hypothesis import event, given, settings
from hypothesis import strategies as st
from token_id_cases import CALLER_INPUT, MAX_LEN, VOCAB, reference_ids

from export import runtime
from export.formats.tf_function import keras_runtime
from export.runtime.generation import RecomputeStep
from export.verification.parity import TOLERANCE, diff_stats


@pytest.fixture(scope="module")
def predictor():
    return runtime.load(exported(CLASSIFIER)[1].path)


def test_predict_matches_keras_for_both_model_kinds():
    ids = np.array([[4, 8, 15, 16], [23, 42, 0, 0]], np.int32)
    for name, shape in [(CLASSIFIER, (2, 3)), (LANGUAGE_MODEL, (2, 4, 50))]:
        model, result = exported(name)
        logits = runtime.load(result.path).predict(ids)
        assert logits.shape == shape and logits.dtype == np.float32
        assert diff_stats(keras_runtime(model)(ids), logits)[0] <= TOLERANCE


class RecordingSession:
    """An onnxruntime session that records the shape of every batch it runs."""

    def __init__(self, session):
        self.session, self.shapes = session, []

    def run(self, names, feeds):
        self.shapes.append(feeds["token_ids"].shape)
        return self.session.run(names, feeds)


def test_predict_by_length_keeps_each_rows_logits_and_order():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 13, size=11)
    ids = rng.integers(1, 50, size=(11, 12)).astype(np.int32)
    ids[np.arange(12) >= lengths[:, None]] = 0
    for name in (CLASSIFIER, LANGUAGE_MODEL):
        predictor = runtime.load(exported(name)[1].path)
        session = predictor.session
        predictor.session = RecordingSession(session)
        by_length = predictor.predict_by_length(ids, batch_size=4)
        shapes, predictor.session = predictor.session.shapes, session
        assert shapes == [(4, w) for w in np.sort(lengths)[3::4]] + [(3, lengths.max())]
        whole = predictor.predict(ids)
        for row, length in enumerate(lengths):  # a language model: compare real positions
            assert diff_stats(whole[row, :length], by_length[row, :length])[0] <= TOLERANCE
    with pytest.raises(ValueError, match="batch_size=0"):
        predictor.predict_by_length(ids, batch_size=0)


def test_ragged_lists_and_single_sequences_are_padded(predictor):
    padded = predictor.predict(np.array([[5, 3, 9], [7, 0, 0]]))
    np.testing.assert_array_equal(predictor.predict([[5, 3, 9], [7]]), padded)
    np.testing.assert_array_equal(predictor.predict([7]), predictor.predict([[7]]))


def test_metadata_gives_back_the_config(predictor):
    model, _ = exported(CLASSIFIER)
    import keras_attn as ka

    assert predictor.metadata["config"] == ka.config_from_model(model).to_dict()
    assert (predictor.task, predictor.max_len, predictor.vocab_size) == ("classifier", 16, 50)
    assert predictor.class_names is None
    assert predictor.metadata["opset"] == 17


def test_load_takes_a_folder_or_an_onnx_file():
    _, result = exported(CLASSIFIER)
    assert runtime.load(result.onnx_path).path == result.onnx_path  # a file is taken as is
    assert runtime.load(result.optimized_path).path == result.optimized_path
    # The message names the path given, not the file looked for inside it.
    model_folder = str(result.path.parent)  # the model folder, not a version folder
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"Received: {model_folder!r}, a folder without model.onnx")):
        runtime.load(model_folder)
    with pytest.raises(FileNotFoundError, match="a file that is not .onnx"):
        runtime.load(result.keras_path)
    with pytest.raises(FileNotFoundError, match="which does not exist"):
        runtime.load(result.path / "nope.onnx")


def test_a_folder_is_served_from_the_optimized_file_unless_told_otherwise():
    _, result = exported(CLASSIFIER)
    optimized = runtime.load(result.path)
    assert optimized.path == result.path / "model.optimized.onnx"
    portable = runtime.load(result.path, variant="portable")
    assert portable.path == result.path / "model.onnx"
    assert optimized.metadata == portable.metadata  # copied into the optimized file
    ops = {node.op_type for node in onnx.load(optimized.path).graph.node}
    assert "Attention" in ops and "Attention" not in {
        node.op_type for node in onnx.load(portable.path).graph.node}
    ids = [[4, 8, 15, 16], [23, 42]]
    assert diff_stats(optimized.predict(ids), portable.predict(ids))[0] <= TOLERANCE
    with pytest.raises(ValueError, match=r"variant must be one of \['int8', 'optimized', "
                       r"'portable'\]. Received: variant='fast'"):
        runtime.load(result.path, variant="fast")


def test_int8_is_loaded_only_when_asked_for_and_present(tmp_path):
    _, result = exported_confident()
    int8 = runtime.load(result.path, variant="int8")
    assert int8.path == result.path / "model.int8.onnx"
    assert int8.metadata == runtime.load(result.path).metadata
    assert int8.predict([[4, 8, 15]]).argmax() == 0
    version = shutil.copytree(result.path, tmp_path / "1")
    (version / "model.int8.onnx").unlink()
    with pytest.raises(FileNotFoundError, match=r"holding model.int8.onnx \(variant 'int8'\)"):
        runtime.load(version, variant="int8")


def test_a_folder_without_the_optimized_file_falls_back_to_model_onnx(tmp_path):
    """An export that left model.optimized.onnx out (or one made before it existed)."""
    version = shutil.copytree(exported(CLASSIFIER)[1].path, tmp_path / "1")
    (version / "model.optimized.onnx").unlink()
    assert runtime.load(version).path == version / "model.onnx"


def test_session_options_are_set_deliberately():
    _, result = exported(CLASSIFIER)
    predictor = runtime.load(result.path, optimization="basic", threads=2)
    assert predictor.session.get_providers() == ["CPUExecutionProvider"]
    assert predictor.optimization == "basic"
    with pytest.raises(ValueError, match=r"optimization must be one of.*'fast'"):
        runtime.load(result.path, optimization="fast")
    with pytest.raises(ValueError, match="threads=0"):
        runtime.load(result.path, threads=0)


def saturating_matmul_integer() -> onnx.ModelProto:
    """MatMulInteger of uint8 activations by int8 weights (U8S8, what an int8 file exported by
    keras-attn 0.1 runs) where every pair of products sums past int16: 2 x 255 x 127."""
    from onnx import TensorProto, helper, numpy_helper

    # With both zero points, as quantize_dynamic writes them (onnxruntime 1.20's exact path
    # aborts the process on a MatMulInteger without them).
    constants = [numpy_helper.from_array(np.full((64, 4), 127, np.int8), "weights"),
                 numpy_helper.from_array(np.array(0, np.uint8), "activations_zero_point"),
                 numpy_helper.from_array(np.array(0, np.int8), "weights_zero_point")]
    node = helper.make_node("MatMulInteger", ["activations", "weights", "activations_zero_point",
                                              "weights_zero_point"], ["products"])
    graph = helper.make_graph(
        [node], "u8s8", [helper.make_tensor_value_info("activations", TensorProto.UINT8, [1, 64])],
        [helper.make_tensor_value_info("products", TensorProto.INT32, [1, 4])], constants)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_sessions_multiply_int8_exactly_on_every_cpu(tmp_path):
    """onnxruntime's U8S8 kernel on x86 CPUs without VNNI adds pairs of products into a
    saturating int16 (an AVX2-only AMD EPYC answered 32767 per pair here, and the 0.1 int8
    fixture agreed with Keras on 81% of its rows). Every keras-attn session asks for the exact
    path. On a CPU with VNNI the fast path is exact too, so there this holds either way."""
    import onnxruntime as ort

    from export.runtime.predictor import session_options

    path = tmp_path / "u8s8.onnx"
    onnx.save(saturating_matmul_integer(), path)
    session = ort.InferenceSession(path, session_options(), providers=["CPUExecutionProvider"])
    (products,) = session.run(None, {"activations": np.full((1, 64), 255, np.uint8)})
    np.testing.assert_array_equal(products, np.full((1, 4), 64 * 255 * 127, np.int32))


def test_ids_are_checked_before_onnxruntime_sees_them(monkeypatch):
    """onnxruntime's Gather wraps negative ids around and knows no max_len: the predictor
    must refuse bad ids without running the session at all."""
    predictor = runtime.load(exported(CLASSIFIER)[1].path)
    calls = []
    monkeypatch.setattr(predictor.session, "run", lambda *args: calls.append(args))
    with pytest.raises(ValueError, match=r"\[0, vocab_size=50\)\. Received: id -1 at \[0, 1\]"):
        predictor.predict([[3, -1]])
    with pytest.raises(ValueError, match="sequence 1 is all padding"):
        predictor.predict([[3, 4], [0, 0]])
    assert calls == []


@pytest.mark.parametrize("token_ids, message", [
    ([[1, 50]], r"^token_ids must lie in \[0, vocab_size=50\)\. Received: id 50 at \[0, 1\]"),
    (np.ones((1, 17), np.int64),
     r"^Sequence length must be between 1 and max_len=16, .*Received: sequence length 17"),
    ([[1, 2], []], r"max_len=16, .*Received: sequence length 0 \(sequence 1\)"),
    ([[0, 0, 0]], r"at least one non-padding id .*Received: sequence 0 is all padding"),
    (np.ones((2, 3), np.float32), "integer token ids. Received: dtype float32"),
    (np.ones((1, 2, 3), np.int32), "rank 3"),
    ([], "at least one sequence"),
])
def test_bad_inputs_raise_clear_errors(predictor, token_ids, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict(token_ids)


@pytest.mark.parametrize("token_ids, message", [
    ([[3, 1.7]], r"integer token ids\. Received: dtype float64"),  # was run as id 1
    ([[3, True]], r"a boolean is not one\. Received: True"),  # was run as id 1
])
def test_the_recompute_step_never_casts_an_id(token_ids, message):
    step = RecomputeStep(runtime.load(exported(LANGUAGE_MODEL)[1].path))
    with pytest.raises(ValueError, match=message):
        step(token_ids, [[0, 1]], step.empty_cache())
    logits, cache = step([[3, 4]], [[0, 1]], step.empty_cache())
    assert logits.shape == (1, 2, 50) and cache.tolist() == [[3, 4]]


def test_plain_onnx_model_without_our_metadata_is_refused(tmp_path):
    from onnx import TensorProto, helper, save_model

    graph = helper.make_graph(
        [helper.make_node("Identity", ["token_ids"], ["logits"])], "g",
        [helper.make_tensor_value_info("token_ids", TensorProto.INT32, ["b", "n"])],
        [helper.make_tensor_value_info("logits", TensorProto.INT32, ["b", "n"])])
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
               tmp_path / "plain.onnx")
    with pytest.raises(ValueError, match=r"lacks the keras-attn metadata \['task', 'config'"):
        runtime.load(tmp_path / "plain.onnx")


SERVE_WITHOUT_TENSORFLOW = BLOCK_IMPORTS + '''
import json
try:
    import tensorflow
except ImportError:
    pass
else:
    raise SystemExit("the import blocker let tensorflow through")
import export
from export import runtime
from export.artifact import token_ids as inputs
predictor = runtime.load(sys.argv[2])
portable = runtime.load(sys.argv[2], variant="portable")
logits = predictor.predict(json.loads(sys.argv[3]))
try:
    predictor.predict([[-1]])
    error = None
except ValueError as caught:
    error = str(caught)
heavy = ("tensorflow", "keras", "keras_attn", "tf2onnx", "onnx", "onnxscript", "onnx_ir")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps({"logits": logits.tolist(), "error": error, "loaded": loaded,
                  "task": predictor.metadata["task"], "file": predictor.path.name,
                  "portable": portable.predict(json.loads(sys.argv[3])).tolist()}))
'''


def test_runtime_serves_in_a_process_where_tensorflow_cannot_be_imported():
    model, result = exported(LANGUAGE_MODEL)
    ragged = [[5, 6, 7], [9]]
    done = run_python(SERVE_WITHOUT_TENSORFLOW,
                      "tensorflow,keras,keras_attn,tf2onnx,onnxscript,onnx_ir",
                      str(result.path), json.dumps(ragged))
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.splitlines()[-1])
    assert served["loaded"] == []  # not even onnx: onnxruntime and numpy suffice
    assert served["task"] == "language_model"
    assert served["file"] == "model.optimized.onnx"  # com.microsoft ops, no onnxscript needed
    assert "vocab_size=50" in served["error"]
    expected = keras_runtime(model)(np.array([[5, 6, 7], [9, 0, 0]], np.int32))
    for logits in (served["logits"], served["portable"]):
        assert diff_stats(expected, np.array(logits, np.float32))[0] <= TOLERANCE



# --- properties: hypothesis over what callers pass (issue 19: "hypothesis property tests on the
# predictor") --------------------------------------------------------------------------------

@settings(max_examples=600, derandomize=True, deadline=None)  # the same 600 inputs each run
@given(CALLER_INPUT)
def test_any_input_is_run_exactly_as_given_or_refused_with_a_value_error(predictor, token_ids):
    """A property of every input: logits for exactly the ids given (no cast, no wrap, no clamp,
    a boolean never read as id 1), or a ValueError that says what was received."""
    expected = reference_ids(token_ids)
    event("valid ids" if expected is not None else "not ids")  # --hypothesis-show-statistics
    try:
        logits = predictor.predict(token_ids)
    except ValueError as error:
        assert expected is None, f"refused valid ids {expected.tolist()}: {error}"
        assert "Received" in str(error)
        return
    assert expected is not None, f"ran {token_ids!r}, which holds a value that is not an id"
    np.testing.assert_array_equal(logits, predictor.run(expected))
    assert logits.shape == (len(expected), 3) and np.isfinite(logits).all()


VALID_BATCH = st.lists(st.lists(st.integers(1, VOCAB - 1), min_size=1, max_size=MAX_LEN),
                       min_size=1, max_size=6)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(VALID_BATCH, st.integers(1, 4))
def test_a_rows_logits_depend_on_neither_its_batch_mates_nor_its_padding(predictor, rows,
                                                                           batch_size):
    together = predictor.predict(rows)
    alone = np.concatenate([predictor.predict([row]) for row in rows])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    padded = np.zeros((len(rows), MAX_LEN), np.int32)
    for index, row in enumerate(rows):
        padded[index, :len(row)] = row
    np.testing.assert_allclose(predictor.predict(padded), alone, atol=1e-5)
    np.testing.assert_allclose(predictor.predict_by_length(rows, batch_size), together, atol=1e-5)
