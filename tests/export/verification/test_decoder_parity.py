"""The exported decoder step (export/runtime/decoder_step.py,
export/verification/decoder_parity.py): named inputs and
outputs, parity with a full Keras recompute at every step, greedy Keras == greedy onnxruntime,
and a check that fails when the decoder drifts."""

import keras
import numpy as np
import pytest
from onnx import numpy_helper

import keras_attn as ka
from export.artifact.decoder_io import past_names, present_names
from export.artifact.metadata import encode_metadata
from export.formats.decoder_onnx import convert_decoder, write_decoder_files
from export.formats.onnx import save_onnx
from export.runtime.decoder_step import CachedStep
from export.runtime.generation import load_step
from export.runtime.sampling import generate_ids
from export.verification.decoder_parity import check_decoder, check_decoder_parity
from keras_attn.models.cached_decoder import CachedDecoder

MAX_LEN = 10


def write_decoder(model, folder, metadata):
    """The exporter's two steps for a decoder: write the files, then check them."""
    return check_decoder(model, folder, 1e-5, write_decoder_files(model, folder, metadata, 17))


@pytest.fixture(scope="module", params=[False, True], ids=["post-norm", "pre-norm"])
def exported(request, tmp_path_factory):
    keras.utils.set_random_seed(3)
    config = ka.ModelConfig(vocab_size=30, max_len=MAX_LEN, d_model=16, num_heads=2, ff_dim=32,
                            num_layers=2, num_classes=30, norm_first=request.param,
                            activation="gelu_tanh")
    model = ka.build_language_model(config)
    metadata = encode_metadata(config.to_dict(), "language_model", 17, ka.__version__, None)
    path = tmp_path_factory.mktemp("decoder") / "decoder.onnx"
    save_onnx(convert_decoder(model, metadata, 17), path)
    return model, CachedStep(path)


def test_inputs_and_outputs_are_named_with_named_dims(exported):
    _, step = exported
    inputs = {value.name: value.shape for value in step.session.get_inputs()}
    outputs = {value.name: value.shape for value in step.session.get_outputs()}
    assert inputs["token_ids"] == inputs["position_ids"] == ["batch", "new"]
    assert outputs["logits"] == ["batch", "new", 30]
    for layer in range(2):
        for name in past_names(layer):
            assert inputs[name] == ["batch", 2, "past", 8]  # [batch, heads, past, head_dim]
        for name in present_names(layer):
            assert outputs[name] == ["batch", 2, "past_plus_new", 8]
    assert len(inputs) == 2 + 4 and len(outputs) == 1 + 4


def test_onnx_step_equals_a_full_keras_recompute_at_every_step(exported):
    model, step = exported
    report = check_decoder_parity(model, {"onnx decoder": step}, tolerance=1e-5)
    assert report["ok"], report
    assert report["greedy_tokens_equal"]
    # Prompts of 1, 5 and 9 tokens, each decoded to max_len (one step per position read).
    assert report["steps"] == 2 * (10 + 6 + 2)
    assert report["onnx decoder vs recompute"] <= 1e-5


def test_a_batch_of_two_and_an_empty_past(exported):
    model, step = exported
    ids = np.array([[3, 4, 5], [7, 8, 9]])
    logits, cache = step(ids, np.array([[0, 1, 2]] * 2), step.empty_cache(batch=2))
    full = keras.ops.convert_to_numpy(model(ids))
    np.testing.assert_allclose(logits, full, rtol=0, atol=1e-5)
    assert cache[1][0].shape == (2, 2, 3, 8)


def test_greedy_onnxruntime_equals_greedy_keras(exported):
    model, step = exported
    decoder = CachedDecoder(model)
    keras_ids = generate_ids(decoder.step, decoder.empty_cache(), [5, 6], MAX_LEN, None, 8)
    onnx_ids = generate_ids(step, step.empty_cache(), [5, 6], MAX_LEN, None, 8)
    assert keras_ids.new_ids == onnx_ids.new_ids and len(onnx_ids.new_ids) == 8


def test_the_parity_check_fails_when_the_decoder_drifts(exported):
    model, step = exported

    class Drifting:
        def __getattr__(self, name):
            return getattr(step, name)

        def __call__(self, token_ids, position_ids, cache):
            logits, cache = step(token_ids, position_ids, cache)
            return logits + 1e-3 * (position_ids[..., None] == 6), cache

    report = check_decoder_parity(model, {"onnx decoder": Drifting()}, tolerance=1e-5)
    assert not report["ok"]
    assert report["onnx decoder vs recompute"] == pytest.approx(1e-3, rel=1e-2)


def _past(batch, length):
    return np.zeros((batch, 2, length, 8), np.float32)


@pytest.mark.parametrize("token_ids, position_ids, past, fragment", [
    ([[1]], [[10]], None, r"position_ids must lie in \[0, max_len=10\).*positions from 10"),
    ([[30]], [[0]], None, r"token_ids must lie in \[0, vocab_size=30\).*ids from 30 to 30"),
    ([[1.5]], [[0]], None, r"token_ids must be an integer array.*float64"),
    ([[3, 4]], [[0]], None, r"position_ids must have the shape of token_ids"),
    # issue 19 case 4: both ONNX steps answered for max_len + 1 keys
    ([[3, 4]], [[8, 9]], [_past(1, 9)] * 2, r"past \+ new must be at most max_len=10.*= 11"),
    # ... and a cache of another batch failed deep inside onnxruntime
    ([[3]], [[2]], [_past(2, 2)] * 2, r"past_key_values.0.key must have the batch size"),
    ([[3]], [[2]], [_past(1, 2), _past(1, 1)],
     r"past_key_values.0.value must have the past length of past_key_values.0.key"),
    ([[3]], [[2]], [np.zeros((1, 3, 2, 8), np.float32)] * 2, r"heads=2"),
])
def test_bad_step_inputs_get_the_savedmodel_steps_message(exported, token_ids, position_ids,
                                                           past, fragment):
    _, step = exported
    cache = step.empty_cache() if past is None else [tuple(past)] * step.num_layers
    with pytest.raises(ValueError, match=fragment):
        step(np.array(token_ids), np.array(position_ids), cache)


@pytest.mark.parametrize("token_ids, position_ids, fragment", [
    ([[3, True]], [[0, 1]], r"^token_ids must hold integers, and a boolean is not one"),
    ([[3, 4]], [[0, False]], r"^position_ids must hold integers, and a boolean is not one"),
    ([[3, 4.0]], [[0, 1]], r"^token_ids must be an integer array.*float64"),
])
def test_python_lists_are_checked_before_numpy_casts_them(exported, token_ids, position_ids,
                                                          fragment):
    """NumPy reads [[3, True]] as int64 [[3, 1]]: the step answered for the id 1."""
    _, step = exported
    with pytest.raises(ValueError, match=fragment):
        step(token_ids, position_ids, step.empty_cache())


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """`write_decoder` into a folder: (model, metadata, folder, manifest entry)."""
    keras.utils.set_random_seed(4)
    config = ka.ModelConfig(vocab_size=30, max_len=MAX_LEN, d_model=16, num_heads=2, ff_dim=32,
                            num_layers=2, num_classes=30)
    model = ka.build_language_model(config)
    metadata = encode_metadata(config.to_dict(), "language_model", 17, ka.__version__, None)
    folder = tmp_path_factory.mktemp("written")
    return model, metadata, folder, write_decoder(model, folder, metadata)


def test_the_optimized_decoder_ships_checked_at_every_step_and_generation_uses_it(written):
    model, _, folder, entry = written
    optimized = entry["optimized"]
    assert optimized["shipped"] and (folder / "decoder.optimized.onnx").is_file()
    # LayerNormalization and MatMul kernels; the cached attention matches no fusion rule.
    assert optimized["rewrites"]["layer_norm"] == 4 and optimized["rewrites"]["tensordot"] > 0
    report = optimized["parity"]
    assert report["ok"] and report["greedy_tokens_equal"]
    assert report["onnx decoder optimized vs recompute"] <= 1e-5
    assert report["steps"] == 2 * (10 + 6 + 2)
    assert entry["parity"]["ok"] and entry["savedmodel_signature"] is None  # no SavedModel
    step = load_step(folder)
    assert step.path.name == "decoder.optimized.onnx"
    reference = CachedStep(folder / "decoder.onnx")
    assert (generate_ids(step, step.empty_cache(), [3, 9], MAX_LEN, None, 8).new_ids
            == generate_ids(reference, reference.empty_cache(), [3, 9], MAX_LEN, None, 8).new_ids)


def test_an_optimized_decoder_that_drifts_is_left_out(written, tmp_path, monkeypatch):
    import onnx

    import export.formats.decoder_onnx
    import export.formats.optimize

    model, metadata, folder, _ = written
    rewrite = export.formats.optimize.rewrite
    converted = onnx.load(folder / "decoder.onnx")  # the same conversion, not traced again
    monkeypatch.setattr(export.formats.decoder_onnx, "convert_decoder",
                        lambda *args: converted)

    def drifting(proto):
        rewritten, counts = rewrite(proto)
        weight = max(rewritten.graph.initializer, key=lambda tensor: np.prod(tensor.dims))
        weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.01,
                                                weight.name))
        return rewritten, counts

    monkeypatch.setattr(export.formats.decoder_onnx, "rewrite", drifting)
    with pytest.warns(RuntimeWarning, match="decoder.optimized.onnx is not shipped: failed the "
                                            "parity check"):
        entry = write_decoder(model, tmp_path, metadata)
    assert not (tmp_path / "decoder.optimized.onnx").exists()
    assert entry["optimized"]["shipped"] is False and entry["parity"]["ok"]
    assert load_step(tmp_path).path.name == "decoder.onnx"
