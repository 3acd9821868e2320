"""The functional models: names, shapes, padding invariance, config recovery, round trips."""

import keras
import numpy as np
import pytest
from fp32_floor import fp32_tolerance

import keras_attn as ka

CONFIG = ka.ModelConfig(vocab_size=40, max_len=12, d_model=16, num_heads=2, ff_dim=32,
                        num_layers=2, num_classes=3, dropout=0.1, attention_dropout=0.05)


@pytest.fixture(scope="module", params=["post-norm", "pre-norm"])
def models(request):
    """Fixed weights (seed 0): a test's margin holds for the draw it was measured on."""
    config = ka.ModelConfig(**{**CONFIG.to_dict(), "norm_first": request.param == "pre-norm"})
    keras.utils.set_random_seed(0)
    return config, ka.build_classifier(config), ka.build_language_model(config)


def ids(rng, batch, n, vocab=40):
    return rng.integers(1, vocab, size=(batch, n)).astype("int32")


def test_inputs_and_outputs_are_named(models):
    _, classifier, language_model = models
    for model in (classifier, language_model):
        assert [t.name for t in model.inputs] == ["token_ids"]
        assert model.inputs[0].dtype == "int64" and model.inputs[0].shape == (None, None)
        assert model.outputs[0].dtype == "float32"
        assert model.output_names == ["logits"]
    assert classifier.outputs[0].shape == (None, 3)
    assert language_model.outputs[0].shape == (None, None, 40)


def first_7(model, x):
    return np.asarray(model(x))[:, :7]


def test_appending_padding_changes_no_logit(models):
    """Equal in exact arithmetic; each fp32 run is up to the floor away (`fp32_tolerance`)."""
    _, classifier, language_model = models
    rng = np.random.default_rng(0)
    tokens = ids(rng, 4, 7)
    padded = np.concatenate([tokens, np.zeros((4, 5), "int32")], axis=1)
    np.testing.assert_allclose(classifier(padded), classifier(tokens), rtol=0,
                               atol=fp32_tolerance(classifier, padded, tokens))
    np.testing.assert_allclose(first_7(language_model, padded), language_model(tokens), rtol=0,
                               atol=fp32_tolerance(language_model, padded, tokens, run=first_7))


def test_ragged_batch_equals_one_by_one(models):
    _, classifier, _ = models
    rng = np.random.default_rng(1)
    lengths = [1, 5, 12]
    batch = np.zeros((3, 12), "int32")
    rows = [ids(rng, 1, n) for n in lengths]
    for row, (i, n) in zip(rows, enumerate(lengths), strict=True):
        batch[i, :n] = row
    together = np.asarray(classifier(batch))
    for i, row in enumerate(rows):
        np.testing.assert_allclose(together[i], np.asarray(classifier(row))[0], atol=1e-5)


def test_language_model_is_causal(models):
    _, _, language_model = models
    rng = np.random.default_rng(2)
    tokens = ids(rng, 2, 10)
    changed = tokens.copy()
    changed[:, 6:] = ids(rng, 2, 4)
    before, after = np.asarray(language_model(tokens)), np.asarray(language_model(changed))
    np.testing.assert_allclose(before[:, :6], after[:, :6], rtol=0,
                               atol=fp32_tolerance(language_model, tokens, changed))
    assert not np.allclose(before[:, 6:], after[:, 6:])


def test_config_and_task_are_recovered_from_a_loaded_model(models, tmp_path):
    config, classifier, language_model = models
    classifier.save(tmp_path / "c.keras")
    loaded = keras.models.load_model(tmp_path / "c.keras", safe_mode=True)
    assert ka.config_from_model(loaded) == config
    assert ka.model_task(loaded) == "classifier"
    assert ka.model_task(language_model) == "language_model"
    assert ka.config_from_model(language_model).num_classes == config.vocab_size
    tokens = ids(np.random.default_rng(3), 3, 9)
    np.testing.assert_array_equal(loaded.predict(tokens, verbose=0),
                                  classifier.predict(tokens, verbose=0))


def test_config_from_a_foreign_model_is_a_clear_error():
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="Expected a model built by keras_attn"):
        ka.config_from_model(keras.Model(inputs, keras.layers.Dense(2)(inputs)))


@pytest.mark.parametrize("builder", [ka.build_classifier, ka.build_language_model])
def test_both_models_fit_under_xla(builder):
    keras.utils.set_random_seed(0)  # initial weights and dropout: the same run every time
    model = builder(CONFIG)
    model.compile(optimizer="adam", jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(4)
    x = ids(rng, 16, 12)
    y = rng.integers(0, 3, size=16) if builder is ka.build_classifier else x
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("builder", [ka.build_classifier, ka.build_language_model])
def test_both_models_round_trip_config_and_keras_file(builder, tmp_path):
    model = builder(CONFIG)
    rebuilt = keras.Model.from_config(model.get_config())
    assert rebuilt.get_config() == model.get_config()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    tokens = ids(np.random.default_rng(5), 3, 12)
    np.testing.assert_array_equal(loaded.predict(tokens, verbose=0),
                                  model.predict(tokens, verbose=0))


WRAPPED = np.array([[2**32 + 5, 7]], np.int64)  # 5 once narrowed to int32


@pytest.mark.parametrize("builder", [ka.build_classifier, ka.build_language_model])
def test_int64_ids_are_checked_before_any_cast(builder):
    model = builder(CONFIG)
    with pytest.raises(ValueError, match="vocab_size=40.*4294967301"):
        model(WRAPPED)
    with pytest.raises(Exception, match=r"token_ids must lie in \[0, vocab_size=40\)"):
        model.predict(WRAPPED, verbose=0)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    labels = np.zeros((1,), "int32") if builder is ka.build_classifier else np.ones((1, 2))
    with pytest.raises(Exception, match=r"token_ids must lie in \[0, vocab_size=40\)"):
        model.fit(WRAPPED, labels, epochs=1, verbose=0)


@pytest.mark.parametrize("call", ["eager", "predict"])
def test_a_sequence_of_padding_only_is_rejected(models, call):
    _, classifier, _ = models
    run = classifier if call == "eager" else (lambda x: classifier.predict(x, verbose=0))
    with pytest.raises(Exception, match="at least one non-padding id"):
        run(np.array([[3, 4, 0], [0, 0, 0]], np.int32))


BAD_IDS = [np.array([[5, 40, 9]]), np.array([[5, -3, 9]])]


@pytest.mark.parametrize("bad", BAD_IDS, ids=["too-big", "negative"])
def test_a_model_saved_after_xla_training_loads_without_xla(tmp_path, bad):
    model = ka.build_classifier(CONFIG)
    model.compile(optimizer="adam", jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ids(np.random.default_rng(6), 8, 5), np.zeros(8), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = ka.load_model(tmp_path / "m.keras")
    assert loaded.jit_compile is False
    for _ in range(2):  # the first call traces; later calls reuse the traced function
        with pytest.raises(Exception, match=r"token_ids must lie in \[0, vocab_size=40\)"):
            loaded.predict(bad, verbose=0)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("builder", [ka.build_classifier, ka.build_language_model])
def test_logits_stay_float32_under_mixed_precision(builder, policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = builder(CONFIG)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    tokens = ids(np.random.default_rng(7), 2, 6)
    assert model.outputs[0].dtype == "float32"
    assert keras.backend.standardize_dtype(model(tokens).dtype) == "float32"


def test_rebuild_keeps_weights_under_another_policy(models):
    _, classifier, _ = models
    twin = ka.rebuild(classifier, "float64")
    assert twin.outputs[0].dtype == "float64" and not twin.compiled
    tokens = ids(np.random.default_rng(8), 3, 9)
    np.testing.assert_allclose(twin(tokens), classifier(tokens), atol=1e-5)
