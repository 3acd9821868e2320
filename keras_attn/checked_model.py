"""A functional model that checks token ids at its boundary, the same way on every backend.

Keras casts a functional model's inputs to the declared dtype, and traces `fit`/`predict`,
before any layer runs. Inside a trace there are no values to check, and only TensorFlow has an
in-graph assert; on JAX without x64 an int64 id is narrowed to int32 on the way in (2**32 + 5
becomes 5). So the ids are checked here, from NumPy, before Keras sees them: `model(x)`,
`predict`, `fit` (and `validation_data`), `evaluate` and the `*_on_batch` methods. Inputs
without values up front (a `tf.data.Dataset`, a generator, a `PyDataset`) pass through: the
layer checks them itself where it can (TensorFlow asserts; eager torch steps).

The class adds no state and keeps Keras's functional `__init__`, so `get_config` is the
functional config and a `.keras` file loads back as this class with `safe_mode=True`.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

from keras_attn.token_checks import check_token_values, concrete_values

INPUT_NAME = "token_ids"


@keras.saving.register_keras_serializable(package="keras_attn")
class CheckedModel(keras.Model):
    """A functional `keras.Model` whose token ids are checked before any cast or trace.

    Built like `keras.Model(inputs, outputs, name=...)` by `build_classifier` and
    `build_language_model`; the limits come from its `PositionalEmbedding` layer.

    Raises:
        ValueError: from `__call__`, `predict`, `fit`, `evaluate`, `predict_on_batch`,
            `train_on_batch`, `test_on_batch` on array inputs whose ids are not integers,
            not rank 2, longer than max_len, outside [0, vocab_size), or a row of padding only
            (messages from `keras_attn.token_checks`).
    """

    def check_inputs(self, x) -> None:
        """Raises ValueError about bad token ids in `x` when it holds values; else nothing."""
        values = _values_of(x)
        if values is None:
            return
        embedding = self._embedding()
        check_token_values(values, embedding.vocab_size, embedding.max_len)

    def _embedding(self):
        from keras_attn.positional_embedding import PositionalEmbedding

        for layer in self.layers:
            if isinstance(layer, PositionalEmbedding):
                return layer
        raise ValueError(
            f"A CheckedModel needs a PositionalEmbedding layer to know its limits. "
            f"Received: layers {[layer.name for layer in self.layers]}"
        )

    def __call__(self, *args, **kwargs):
        if args:
            self.check_inputs(args[0])
        elif "inputs" in kwargs:
            self.check_inputs(kwargs["inputs"])
        with _CheckedNarrowing():
            return super().__call__(*args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self.check_inputs(x)
        with _CheckedNarrowing():
            return super().predict(x, *args, **kwargs)

    def fit(self, x=None, y=None, *args, **kwargs):
        self.check_inputs(x)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and validation:
            self.check_inputs(validation[0])
        with _CheckedNarrowing():
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self.check_inputs(x)
        with _CheckedNarrowing():
            return super().evaluate(x, y, *args, **kwargs)

    def predict_on_batch(self, x):
        self.check_inputs(x)
        with _CheckedNarrowing():
            return super().predict_on_batch(x)

    def train_on_batch(self, x, *args, **kwargs):
        self.check_inputs(x)
        with _CheckedNarrowing():
            return super().train_on_batch(x, *args, **kwargs)

    def test_on_batch(self, x, *args, **kwargs):
        self.check_inputs(x)
        with _CheckedNarrowing():
            return super().test_on_batch(x, *args, **kwargs)


def _values_of(x) -> np.ndarray | None:
    """The token ids in `x` as NumPy, or None when `x` holds no values yet (symbolic tensors,
    datasets, generators). `x` may be the array itself, a one-element list, or a dict."""
    if isinstance(x, dict):
        x = x.get(INPUT_NAME)
    if isinstance(x, (list, tuple)):
        if len(x) == 1 and hasattr(x[0], "shape"):
            x = x[0]
        else:
            try:
                x = np.asarray(x)
            except ValueError:  # ragged nested lists: Keras will refuse them itself
                return None
    if x is None or isinstance(x, keras.KerasTensor) or not hasattr(x, "shape"):
        return None
    if isinstance(x, np.ndarray):
        return x
    if not hasattr(x, "dtype") or _is_dataset(x):
        return None
    return concrete_values(x)


def _is_dataset(x) -> bool:
    return type(x).__module__.startswith(("tensorflow.python.data", "torch.utils.data"))


class _CheckedNarrowing(warnings.catch_warnings):
    """On JAX without x64 the declared int64 input becomes int32, with a warning per call.
    The ids were checked below vocab_size first, so the narrowing loses nothing: hide it."""

    def __enter__(self):
        result = super().__enter__()
        warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")
        return result
