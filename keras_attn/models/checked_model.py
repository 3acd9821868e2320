"""A functional model that checks token ids at its boundary, the same way on every backend.

Keras casts a functional model's inputs to the declared dtype, and traces `fit`/`predict`,
before any layer runs. Inside a trace there are no values to check, and only TensorFlow has an
in-graph assert; on JAX without x64 an int64 id is narrowed to int32 on the way in (2**32 + 5
becomes 5). So the ids are checked here, from NumPy, before Keras sees them: `model(x)`,
`predict`, `fit` (and `validation_data`), `evaluate` and the `*_on_batch` methods. Inputs
without values up front (a `tf.data.Dataset`, a generator, a `PyDataset`) are checked batch by
batch as they are drawn (`keras_attn.models.checked_data`), with the same messages.

The class adds no state and keeps Keras's functional `__init__`, so `get_config` is the
functional config and a `.keras` file loads back as this class with `safe_mode=True`.
"""

from __future__ import annotations

import contextlib
import warnings

import keras
import numpy as np

from keras_attn.layers.token_checks import check_token_values, concrete_values
from keras_attn.models.checked_data import (
    INPUT_NAME,
    RAGGED,
    BadBatchError,
    check_label_values,
    checked_data,
    raised_from_data,
)


@keras.saving.register_keras_serializable(package="keras_attn")
class CheckedModel(keras.Model):
    """A functional `keras.Model` whose token ids are checked before any cast or trace.

    Built like `keras.Model(inputs, outputs, name=...)` by `build_classifier` and
    `build_language_model`; the limits come from its `PositionalEmbedding` layer.

    Raises:
        ValueError: from `__call__`, `predict`, `fit`, `evaluate`, `predict_on_batch`,
            `train_on_batch`, `test_on_batch` on array inputs whose ids are not integers,
            not rank 2, longer than max_len, outside [0, vocab_size), or a row of padding only
            (messages from `keras_attn.layers.token_checks`); from `fit`, `predict` and
            `evaluate` on a dataset, generator or PyDataset, when the batch is drawn.
    """

    def check_inputs(self, x) -> None:
        """Raises ValueError about bad token ids in `x` when it holds values; else nothing."""
        values = _values_of(x)
        if values is None:
            return
        embedding = self._embedding()
        check_token_values(values, embedding.vocab_size, embedding.max_len)

    def checked(self, x, y=None, labels: bool = False):
        """`x` (and `y`) checked now if it holds values, else wrapped to be checked batch by
        batch; the labels (`y`, or those of each drawn batch) only when `labels`."""
        self.check_inputs(x)
        if labels and y is not None:
            self.check_labels(y)
        embedding = self._embedding()
        return checked_data(x, embedding.vocab_size, embedding.max_len,
                            self._num_labels() if labels else None)

    def check_labels(self, y) -> None:
        """Raises ValueError about sparse labels outside `[0, logits)` or not integers
        (`keras_attn.models.checked_data.check_label_values`); arrays only."""
        if isinstance(y, (list, tuple)):
            try:
                y = np.asarray(y)
            except ValueError:  # ragged labels: Keras refuses them itself
                return
        if isinstance(y, np.ndarray):
            values = y
        elif hasattr(y, "shape") and hasattr(y, "dtype") and not _is_dataset(y):
            values = concrete_values(y)  # a backend tensor
        else:
            return  # a dict of outputs, or nothing
        if values is not None:
            check_label_values(values, self._num_labels())

    def _num_labels(self) -> int:
        """Logits per prediction: the last axis of the model's output."""
        return int(self.outputs[0].shape[-1])

    def _embedding(self):
        from keras_attn.layers.positional_embedding import PositionalEmbedding

        for layer in self.layers:
            if isinstance(layer, PositionalEmbedding):
                return layer
        raise ValueError(
            f"A CheckedModel needs a PositionalEmbedding layer to know its limits. "
            f"Received: layers {[layer.name for layer in self.layers]}"
        )

    @contextlib.contextmanager
    def _drawing_batches(self):
        """Around `fit`/`predict`/`evaluate`: a check that failed on a drawn batch raises its
        ValueError (`raised_from_data`), and the model stays usable after any failed call:
        - a trace cut short (a statically refused shape) is dropped, or TensorFlow's next call
          would fail with "Creating variables on a non-first call to a function decorated
          with tf.function";
        - on JAX, Keras's trainer takes the weights out of the variables while it loops
          (`_purge_model_variables`) and puts them back only when the loop ends: they are put
          back here (the last step's state, else the values before the call)."""
        saved = _variable_values(self) if keras.backend.backend() == "jax" else []
        try:
            with raised_from_data():
                yield
        except BadBatchError:
            _restore(self, saved)  # the step ran or was traced whole: keep it compiled
            raise
        except Exception:
            _restore(self, saved)
            self.train_function = self.test_function = self.predict_function = None
            raise

    def __call__(self, *args, **kwargs):
        if args:
            self.check_inputs(args[0])
        elif "inputs" in kwargs:
            self.check_inputs(kwargs["inputs"])
        with _CheckedNarrowing():
            return super().__call__(*args, **kwargs)

    def predict(self, x, *args, **kwargs):
        x = self.checked(x)
        with _CheckedNarrowing(), self._drawing_batches():
            return super().predict(x, *args, **kwargs)

    def fit(self, x=None, y=None, *args, **kwargs):
        x = self.checked(x, y, labels=True)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and validation:
            self.check_inputs(validation[0])
            if len(validation) > 1:
                self.check_labels(validation[1])
        elif validation is not None:
            kwargs["validation_data"] = self.checked(validation, labels=True)
        with _CheckedNarrowing(), self._drawing_batches():
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        x = self.checked(x, y, labels=True)
        with _CheckedNarrowing(), self._drawing_batches():
            return super().evaluate(x, y, *args, **kwargs)

    def predict_on_batch(self, x):
        self.check_inputs(x)
        with _CheckedNarrowing():
            return super().predict_on_batch(x)

    def train_on_batch(self, x, y=None, *args, **kwargs):
        self._check_batch(x, y)
        with _CheckedNarrowing():
            return super().train_on_batch(x, y, *args, **kwargs)

    def test_on_batch(self, x, y=None, *args, **kwargs):
        self._check_batch(x, y)
        with _CheckedNarrowing():
            return super().test_on_batch(x, y, *args, **kwargs)

    def _check_batch(self, x, y) -> None:
        self.check_inputs(x)
        if y is not None:
            self.check_labels(y)


def _ragged(x) -> bool:
    """A list of sequences (lists or 1-D arrays) of different lengths."""
    rows = [row for row in x if isinstance(row, (list, tuple, np.ndarray))]
    return len(rows) == len(x) > 0 and len({len(row) for row in rows}) > 1


def _values_of(x) -> np.ndarray | None:
    """The token ids in `x` as NumPy, or None when `x` holds no values yet (symbolic tensors,
    datasets, generators). `x` may be the array itself, a one-element list, or a dict."""
    if isinstance(x, dict):
        x = x.get(INPUT_NAME)
    if isinstance(x, (list, tuple)):
        if len(x) == 1 and hasattr(x[0], "shape"):
            x = x[0]
        elif _ragged(x):
            lengths = [len(row) for row in x[:10]]
            raise ValueError(RAGGED.format(received=f"a list of {len(x)} sequences of lengths "
                                                    f"{lengths}{' ...' if len(x) > 10 else ''}"))
        else:
            x = np.asarray(x)
    if type(x).__name__ in ("RaggedTensor", "RaggedTensorValue"):
        raise ValueError(RAGGED.format(received=f"a tf.RaggedTensor of shape {x.shape} (its "
                                                f"`.to_tensor()` pads it with 0)"))
    if x is None or isinstance(x, keras.KerasTensor) or not hasattr(x, "shape"):
        return None
    if isinstance(x, np.ndarray):
        return x
    if not hasattr(x, "dtype") or _is_dataset(x):
        return None
    return concrete_values(x)


def _variable_values(model) -> list:
    """(variable, its JAX array) for every variable a JAX training loop takes out. JAX arrays
    are immutable: holding them copies nothing."""
    optimizer = getattr(model, "optimizer", None)
    variables = [*model.trainable_variables, *model.non_trainable_variables,
                 *(optimizer.variables if optimizer is not None else []),
                 *model.metrics_variables]
    return [(variable, variable._value) for variable in variables]


def _restore(model, saved: list) -> None:
    """After a JAX loop stopped by an error: its last state (`jax_state_sync`), then the saved
    values for variables still empty (the error came before the first step)."""
    if not saved:
        return
    model.jax_state_sync()
    model._jax_state = None
    for variable, value in saved:
        if variable._value is None and value is not None:
            variable._value = value


def _is_dataset(x) -> bool:
    return type(x).__module__.startswith(("tensorflow.python.data", "torch.utils.data"))


class _CheckedNarrowing(warnings.catch_warnings):
    """On JAX without x64 the declared int64 input becomes int32, with a warning per call.
    The ids were checked below vocab_size first, so the narrowing loses nothing: hide it."""

    def __enter__(self):
        result = super().__enter__()
        warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")
        return result
