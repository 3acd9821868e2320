"""What must hold on every Keras backend, beyond the reference tests: run in the suite's own
process on its backend, and by tests/training/test_backends.py in a subprocess per other backend
(`KERAS_BACKEND` set)."""

import os

import keras
import numpy as np
import pytest
from fp32_floor import fp32_tolerance

import keras_attn as ka
from keras_attn.models.attention_maps import attention_maps

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
    # Issue 19 case 12: Keras said only "Invalid dtype: object".
    "null": (np.array([[1, None]], dtype=object), r"fit in 64 bits.*\(e\.g\. None\)"),
    "beyond-64-bits": (np.array([[3, 2**70]], dtype=object),
                       rf"fit in 64 bits.*\(e\.g\. {2**70}\)"),
    # An empty batch: Keras's predict failed with UnboundLocalError.
    "empty-batch": (np.zeros((0, 3), "int32"), r"at least one sequence.*an empty batch"),
}


def test_the_backend_is_the_one_asked_for():
    assert keras.backend.backend() == os.environ.get("KERAS_BACKEND", "tensorflow")


def compiled(builder=ka.build_classifier, jit_compile=False):
    model = builder(CONFIG)
    model.compile(optimizer="adam", jit_compile=jit_compile,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class Batches(keras.utils.PyDataset):
    """A user's PyDataset: `ids` in batches of 2, with zero labels when `labels`."""

    def __init__(self, ids, labels=True):
        super().__init__()
        self.ids, self.labels = ids, labels

    def __len__(self):
        return -(-len(self.ids) // 2)

    def __getitem__(self, index):
        ids = self.ids[2 * index:2 * index + 2]
        return (ids, np.zeros(len(ids))) if self.labels else ids


def dataset(ids, labels=True):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((ids, np.zeros(len(ids))) if labels else ids
                                              ).batch(2)


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


def as_named_input(x, y):
    """A named function, not a lambda: autograph reads a lambda's source by its line, and
    takes the wrong one where two lambdas share a line (the other is then traced with a
    tensor for its `model`)."""
    return {"token_ids": x}, y


# Inputs that yield their batches later, inside the (traced, on JAX clamping) step.
DRAWN = {
    "fit-tf.data": lambda model, ids: model.fit(dataset(ids), verbose=0),
    "evaluate-tf.data-dict": lambda model, ids: model.evaluate(
        dataset(ids).map(as_named_input), verbose=0),
    "fit-validation-tf.data": lambda model, ids: model.fit(GOOD, LABELS, verbose=0,
                                                           validation_data=dataset(ids)),
    "fit-generator": lambda model, ids: model.fit(iter([(ids, np.zeros(len(ids)))]), verbose=0),
    "predict-PyDataset": lambda model, ids: model.predict(Batches(ids, labels=False), verbose=0),
}


@pytest.mark.parametrize("call", DRAWN)
def test_bad_ids_in_drawn_batches_raise_the_same_message(call):
    """Checked from NumPy as each batch is drawn. 2**32 + 5 is the id JAX would narrow to 5
    inside its jitted step; the other cases share the check (every case: the test above), and
    the shape and dtype cases are refused statically when the step is traced."""
    model = compiled(jit_compile=keras.backend.backend() == "jax")
    weights = model.get_weights()
    ids, message = BAD["wraps-as-int32"]
    with pytest.raises(ValueError, match=message):
        DRAWN[call](model, ids)
    if not call.startswith("fit"):  # nothing trained: the weights are still there, unchanged
        for before, after in zip(weights, model.get_weights(), strict=True):
            np.testing.assert_array_equal(after, before)
    DRAWN[call](model, GOOD)  # and the model still works


# Issue 19 case 5: labels outside [0, num_classes) trained on with loss NaN (TF + XLA) or a
# finite loss (JAX); case 14: string labels gave "Invalid dtype: str96".
BAD_LABELS = {
    "too-big": (np.array([0, 2]), r"\[0, 2\).*Received: labels from 0 to 2"),
    "negative": (np.array([-1, 1]), r"\[0, 2\).*Received: labels from -1 to 1"),
    "strings": (np.array(["neg", "pos"]),
                r"integer class indices.*(dtype <U3 \(e\.g\. 'neg'\)|tf\.string labels).*"
                r"StringLookup"),
    "fractions": (np.array([0.5, 1.0]), r"non-integer values, e\.g\. 0\.5"),
}
LABELLED = {
    "fit": lambda model, y: model.fit(GOOD, y, verbose=0),
    "fit-validation": lambda model, y: model.fit(GOOD, LABELS, verbose=0,
                                                 validation_data=(GOOD, y)),
    "evaluate": lambda model, y: model.evaluate(GOOD, y, verbose=0),
    "train_on_batch": lambda model, y: model.train_on_batch(GOOD, y),
    "test_on_batch": lambda model, y: model.test_on_batch(GOOD, y),
    "fit-generator": lambda model, y: model.fit(iter([(GOOD, y)]), verbose=0),
    "fit-tf.data": lambda model, y: model.fit(labelled_dataset(y), verbose=0),
}


def labelled_dataset(y):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((GOOD, y)).batch(2)


@pytest.mark.parametrize("call", LABELLED)
def test_bad_labels_are_refused_before_training(call):
    model = compiled(jit_compile=keras.backend.backend() == "jax")
    weights = model.get_weights()
    for name, (labels, message) in BAD_LABELS.items():
        with pytest.raises(ValueError, match=message):
            LABELLED[call](model, labels)
        assert name
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(after, before)  # not one step was taken
    LABELLED[call](model, LABELS)  # and good labels still train


def test_one_hot_targets_pass_the_label_check():
    model = ka.build_classifier(CONFIG)
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(GOOD, np.eye(2, dtype="float32")[LABELS], verbose=0)


# Case 13: ragged ids never said to pad ("received 4 input tensors", "Index 1 is not uniform",
# and a TypeError inside checked_data for a ragged tf.data batch).
RAGGED_IDS = [[1, 2, 3], [4, 5]]


def ragged_inputs():
    cases = {"list": RAGGED_IDS, "arrays": [np.array(row) for row in RAGGED_IDS]}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        cases["tf.ragged"] = tf.ragged.constant(RAGGED_IDS)
        cases["tf.data-ragged"] = tf.data.Dataset.from_tensor_slices(
            tf.ragged.constant(RAGGED_IDS)).batch(2)
    return cases


def _with_labels(ids):
    return ids.map(lambda x: (x, 0)) if hasattr(ids, "element_spec") else ids


RAGGED_CALLS = {
    "call": lambda model, ids: model(ids),
    "predict": lambda model, ids: model.predict(ids, verbose=0),
    "fit": lambda model, ids: model.fit(_with_labels(ids), None if hasattr(ids, "element_spec")
                                        else LABELS, verbose=0),
}


@pytest.mark.parametrize("call", RAGGED_CALLS)
def test_ragged_ids_are_told_to_pad(call):
    model = compiled()
    for name, ids in ragged_inputs().items():
        if call == "call" and name == "tf.data-ragged":
            continue  # a model is not called on a dataset
        with pytest.raises(ValueError, match=r"pad every sequence with 0.*pad_sequences"):
            RAGGED_CALLS[call](model, ids)


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
    # The same weights and ops: equal in exact arithmetic, up to the fp32 floor apart.
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=0, atol=fp32_tolerance(model, x))
    with pytest.raises(ValueError, match=r"vocab_size=30"):
        loaded.predict(np.array([[1, 30]]), verbose=0)


def test_attention_maps_rows_sum_to_one_and_padding_gets_none():
    maps = attention_maps(ka.build_classifier(CONFIG), GOOD)
    assert [m.shape for m in maps] == [(2, 2, 4, 4)]
    np.testing.assert_allclose(maps[0].sum(-1), 1.0, atol=1e-5)
    assert np.all(maps[0][0, :, :, 3] == 0.0)
