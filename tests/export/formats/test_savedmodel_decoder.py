"""export/formats/savedmodel_decoder.py: the SavedModel's `decoder_step` signature has
decoder.onnx's
inputs and outputs, equals a full Keras recompute at every step, decodes greedily as Keras and
onnxruntime do, and refuses bad inputs with a message naming the limit."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_cases import CLASSIFIER, exported

import keras_attn as ka
from export.artifact.decoder_io import past_names, present_names
from export.artifact.metadata import encode_metadata
from export.formats.decoder_onnx import convert_decoder
from export.formats.onnx import save_onnx
from export.formats.savedmodel import write_savedmodel
from export.formats.savedmodel_decoder import (
    DECODER_SIGNATURE_NAME,
    SavedModelStep,
    has_decoder_step,
)
from export.runtime.decoder_step import CachedStep
from export.runtime.sampling import generate_ids
from export.verification.decoder_parity import check_decoder_parity, exported_steps
from export.verification.parity import TOLERANCE
from keras_attn.models.cached_decoder import CachedDecoder

MAX_LEN, VOCAB = 10, 30


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    """(model, SavedModelStep, CachedStep) over one 2-block language model."""
    keras.utils.set_random_seed(5)
    config = ka.ModelConfig(vocab_size=VOCAB, max_len=MAX_LEN, d_model=16, num_heads=2,
                            ff_dim=32, num_layers=2, num_classes=VOCAB, norm_first=True,
                            activation="gelu")
    model = ka.build_language_model(config)
    folder = tmp_path_factory.mktemp("savedmodel_decoder")
    write_savedmodel(model, folder, MAX_LEN, VOCAB, decoder_step=True)
    metadata = encode_metadata(config.to_dict(), "language_model", 17, ka.__version__, None)
    save_onnx(convert_decoder(model, metadata, 17), folder / "decoder.onnx")
    return model, SavedModelStep(folder), CachedStep(folder / "decoder.onnx")


def test_the_signature_has_decoder_onnx_names_dtypes_and_open_dims(steps):
    _, saved, onnx_step = steps
    specs = {spec.name: spec for spec in saved.signature.structured_input_signature[1].values()}
    onnx_inputs = {value.name: value for value in onnx_step.session.get_inputs()}
    assert set(specs) == set(onnx_inputs)
    assert set(saved.signature.structured_outputs) == {
        value.name for value in onnx_step.session.get_outputs()}
    assert specs["token_ids"] == tf.TensorSpec([None, None], tf.int64, name="token_ids")
    assert specs["position_ids"].dtype == tf.int64
    for layer in range(2):
        for name in past_names(layer):
            assert specs[name].shape.as_list() == [None, 2, None, 8]  # batch, past open
            assert specs[name].dtype == tf.float32
        for name in present_names(layer):
            assert saved.signature.structured_outputs[name].shape.as_list() == [None, 2, None, 8]


def test_each_step_equals_a_full_recompute_and_greedy_tokens_agree(steps):
    model, saved, onnx_step = steps
    report = check_decoder_parity(
        model, {"savedmodel decoder": saved, "onnx decoder": onnx_step}, TOLERANCE)
    assert report["ok"] and report["greedy_tokens_equal"], report
    # Prompts of 1, 5 and 9 tokens decoded to max_len by three steps: every position read.
    assert report["prompts"] == 3 and report["steps"] == 3 * (10 + 6 + 2)
    assert report["savedmodel decoder vs recompute"] <= TOLERANCE


def test_greedy_savedmodel_equals_keras_and_onnxruntime(steps):
    model, saved, onnx_step = steps
    decoder = CachedDecoder(model)
    new_ids = [generate_ids(step, empty(), [4, 7, 2], MAX_LEN, None, 7).new_ids
               for step, empty in ((decoder.step, decoder.empty_cache),
                                   (saved, saved.empty_cache),
                                   (onnx_step, onnx_step.empty_cache))]
    assert new_ids[0] == new_ids[1] == new_ids[2] and len(new_ids[0]) == 7


def test_a_batch_of_two_with_a_past(steps):
    model, saved, _ = steps
    ids = np.array([[3, 4, 5, 6], [7, 8, 9, 1]])
    _, cache = saved(ids[:, :3], np.array([[0, 1, 2]] * 2), saved.empty_cache(batch=2))
    logits, cache = saved(ids[:, 3:], np.array([[3]] * 2), cache)
    full = keras.ops.convert_to_numpy(model(ids))[:, 3:]
    np.testing.assert_allclose(logits, full, rtol=0, atol=TOLERANCE)
    assert cache[1][1].shape == (2, 2, 4, 8)


def _past(batch, length):
    return np.zeros((batch, 2, length, 8), np.float32)


RANGE = f"token_ids must lie in [0, vocab_size={VOCAB}). Received: "
POSITION = f"position_ids must lie in [0, max_len={MAX_LEN}), one learned position vector each. "


@pytest.mark.parametrize("token_ids, position_ids, pasts, fragment", [
    ([[VOCAB]], [[0]], None, RANGE + f"an id >= {VOCAB}"),
    ([[-1]], [[0]], None, RANGE + "a negative id"),
    ([[2**32 + 5]], [[0]], None, RANGE + f"an id >= {VOCAB}"),  # 5 once narrowed to int32
    ([[3]], [[MAX_LEN]], None, POSITION + f"Received: a position >= {MAX_LEN}"),
    ([[3]], [[-1]], None, POSITION + "Received: a negative position"),
    ([[3, 4]], [[0]], None, "position_ids must have the shape of token_ids, [batch, new]"),
    ([[3, 4]], [[8, 9]], [_past(1, 9)] * 4,
     f"past + new must be at most max_len={MAX_LEN}"),
    ([[3]], [[2]], [_past(2, 2)] * 4,
     "past_key_values.0.key must have the batch size of token_ids"),
    ([[3]], [[2]], [_past(1, 2)] * 3 + [_past(1, 1)],
     "past_key_values.1.value must have the past length of past_key_values.0.key"),
])
def test_bad_inputs_are_refused_naming_the_limit(steps, token_ids, position_ids, pasts,
                                                 fragment):
    _, saved, _ = steps
    cache = saved.empty_cache() if pasts is None else [tuple(pasts[0:2]), tuple(pasts[2:4])]
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        saved(np.array(token_ids, np.int64), np.array(position_ids, np.int64), cache)
    assert fragment in error.value.message


def test_exported_steps_finds_the_signature_only_where_it_was_written(steps, tmp_path):
    _, saved, _ = steps
    assert has_decoder_step(saved.folder) and DECODER_SIGNATURE_NAME == "decoder_step"
    assert set(exported_steps(saved.folder)) == {"onnx decoder", "savedmodel decoder"}
    classifier = exported(CLASSIFIER)[1].path  # a SavedModel with full-sequence signatures
    assert not has_decoder_step(classifier) and exported_steps(classifier) == {}
    assert not has_decoder_step(tmp_path)  # no SavedModel at all


def test_writing_the_savedmodel_logs_no_sanitizing_warning(tmp_path, caplog):
    """TensorFlow warns, each time it traces `decoder_step`, that its dotted input names were
    sanitized: five absl lines in the middle of `train-lm --export`, whose output is only the
    CLI's own lines."""
    config = ka.ModelConfig(vocab_size=VOCAB, max_len=MAX_LEN, d_model=8, num_heads=2,
                            ff_dim=16, num_layers=1, num_classes=VOCAB)
    model = ka.build_language_model(config)  # new: a function traced before does not warn again
    with caplog.at_level(logging.WARNING, logger="absl"):
        write_savedmodel(model, tmp_path, MAX_LEN, VOCAB, decoder_step=True)
    assert has_decoder_step(tmp_path)
    assert not [record for record in caplog.records if "Sanitizing" in record.getMessage()]
