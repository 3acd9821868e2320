"""What must hold on every Keras backend, beyond the reference tests: run by
tests/test_backends.py in a subprocess per backend (`KERAS_BACKEND` set), and here in the
suite's own process on its backend. Named without `test_` so that pytest collects it only when
asked (test_backends.py names it); tests/test_checked_model.py runs it in-process."""

import os

import keras
import numpy as np
import pytest

import keras_attn as ka
from keras_attn.attention_maps import attention_maps

CONFIG = ka.ModelConfig(vocab_size=30, max_len=8, d_model=8, num_heads=2, ff_dim=16,
                        num_layers=1, num_classes=2, dropout=0.1)
GOOD = np.array([[1, 2, 3, 0], [4, 5, 6, 7]], "int32")
LABELS = np.array([0, 1])
# (ids, the message on every backend and in every call)
BAD = {
    "too-long": (np.ones((2, 9), "int32"), r"max_len=8.*Received: sequence length 9"),
    "too-big": (np.array([[1, 30, 2]], "int32"), r"\[0, vocab_size=30\).*ids from 1 to 30"),
    "negative": (np.array([[1, -1, 2]], "int32"), r"\[0, vocab_size=30\).*ids from -1 to 2"),
    "wraps-as-int32": (np.array([[2**32 + 5, 7]], np.int64),
                       r"\[0, vocab_size=30\).*ids from 7 to 4294967301"),
    "padding-only": (np.array([[3, 4, 0], [0, 0, 0]], "int32"),
                     r"at least one non-padding id.*sequence 1 is all padding"),
    "float": (np.array([[1.0, 2.0]], "float32"), r"must be integers.*float32"),
}


def test_the_backend_is_the_one_asked_for():
    assert keras.backend.backend() == os.environ.get("KERAS_BACKEND", "tensorflow")


def compiled(builder=ka.build_classifier, jit_compile=False):
    model = builder(CONFIG)
    model.compile(optimizer="adam", jit_compile=jit_compile,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


CALLS = {
    "call": lambda model, ids: model(ids),
    "predict": lambda model, ids: model.predict(ids, verbose=0),
    "predict_on_batch": lambda model, ids: model.predict_on_batch(ids),
    "fit": lambda model, ids: model.fit(ids, np.zeros(len(ids)), verbose=0),
    "fit-validation": lambda model, ids: model.fit(GOOD, LABELS, verbose=0,
                                                   validation_data=(ids, np.zeros(len(ids)))),
    "evaluate": lambda model, ids: model.evaluate(ids, np.zeros(len(ids)), verbose=0),
    "train_on_batch": lambda model, ids: model.train_on_batch(ids, np.zeros(len(ids))),
    "dict-input": lambda model, ids: model.predict({"token_ids": ids}, verbose=0),
}


@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("call", CALLS)
def test_bad_ids_raise_the_same_message_in_every_call(call, jit_compile):
    """A ValueError before Keras casts or traces: XLA (which clamps ids) never sees them."""
    model = compiled(jit_compile=jit_compile and keras.backend.backend() != "torch")
    for name, (ids, message) in BAD.items():
        with pytest.raises(ValueError, match=message):
            CALLS[call](model, ids)
        assert name  # every case raised


@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("builder", [ka.build_classifier, ka.build_language_model])
def test_fit_predict_save_load(builder, jit_compile, tmp_path):
    if jit_compile and keras.backend.backend() == "torch":
        pytest.skip("torch's jit_compile is torch.compile: minutes to compile on a CPU")
    model = compiled(builder, jit_compile)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, size=(16, 8))
    y = rng.integers(0, 2, size=16) if builder is ka.build_classifier else x
    history = model.fit(x, y, epochs=4, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "m.keras")
    loaded = ka.load_model(tmp_path / "m.keras")
    assert type(loaded) is type(model)
    assert ka.config_from_model(loaded) == ka.config_from_model(model)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    with pytest.raises(ValueError, match=r"vocab_size=30"):
        loaded.predict(np.array([[1, 30]]), verbose=0)


def test_attention_maps_rows_sum_to_one_and_padding_gets_none():
    maps = attention_maps(ka.build_classifier(CONFIG), GOOD)
    assert [m.shape for m in maps] == [(2, 2, 4, 4)]
    np.testing.assert_allclose(maps[0].sum(-1), 1.0, atol=1e-5)
    assert np.all(maps[0][0, :, :, 3] == 0.0)
