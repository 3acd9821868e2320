"""Token-id checks for inputs that hold no values up front, the same way on every backend.

`keras_attn.models.checked_model.CheckedModel` checks arrays before Keras sees them. A
`tf.data.Dataset`, a Python generator or a `keras.utils.PyDataset` yields its batches later,
inside `fit` / `predict` / `evaluate`: on JAX the steps are traced and XLA clamps an id that is
out of range, a silent wrong answer. So each batch's ids are checked from NumPy as the batch is
drawn, with `keras_attn.layers.token_checks.check_token_values` (the messages of every other path):

- `tf.data.Dataset`: a `map` that runs the check in `tf.numpy_function` on each element;
  TensorFlow reports the Python error as its own, so `raised_from_data` turns it back into the
  check's `ValueError`;
- generator (any iterator): a generator that checks each batch, then yields it unchanged;
- `PyDataset`: a `PyDataset` over it that checks each batch it returns (picklable, for
  `use_multiprocessing=True`), with the same workers, queue size and length.

A batch is `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`; `x` is the ids or a dict holding
them under "token_ids".
"""

from __future__ import annotations

import collections.abc
from contextlib import contextmanager

import keras
import numpy as np

from keras_attn.layers.token_checks import check_token_values

INPUT_NAME = "token_ids"
# The check's error while TensorFlow carries it: tf.data runs the check on its own threads, so
# this is one slot for the process (one fit/predict at a time reads it back).
_raised: dict[str, ValueError | None] = {"error": None}


class BadBatchError(ValueError):
    """A drawn batch's ids failed `check_token_values` (its message); a `ValueError`."""


def token_ids_of(batch):
    """The ids tensor of one batch (see the module docstring), or None if it holds none."""
    x = batch[0] if isinstance(batch, tuple) else batch
    if isinstance(x, dict):
        x = x.get(INPUT_NAME)
    return x if hasattr(x, "shape") else None


def check_batch(batch, vocab_size: int, max_len: int):
    """Raises the check's ValueError about the batch's ids; returns the batch unchanged."""
    ids = token_ids_of(batch)
    if ids is not None:
        _check(np.asarray(ids), vocab_size, max_len)
    return batch


def _check(ids: np.ndarray, vocab_size: int, max_len: int) -> None:
    try:
        check_token_values(ids, vocab_size, max_len)
    except ValueError as error:
        raise BadBatchError(str(error)) from None


def checked_data(x, vocab_size: int, max_len: int):
    """`x` whose batches are checked as they are drawn, if it is a dataset, generator or
    PyDataset; anything else is returned as it is (arrays are checked up front)."""
    if _is_tf_dataset(x):
        return _checked_tf_dataset(x, vocab_size, max_len)
    if isinstance(x, keras.utils.PyDataset):
        return CheckedPyDataset(x, vocab_size, max_len)
    if isinstance(x, collections.abc.Iterator):
        return (check_batch(batch, vocab_size, max_len) for batch in x)
    return x


@contextmanager
def raised_from_data():
    """Re-raises the check's ValueError where TensorFlow reports it as its own error (from a
    `tf.numpy_function` in a dataset); other errors pass unchanged."""
    _raised["error"] = None
    try:
        yield
    except Exception as error:
        checked, _raised["error"] = _raised["error"], None
        if checked is not None and error is not checked:
            raise checked from None
        raise


class CheckedPyDataset(keras.utils.PyDataset):
    """A `keras.utils.PyDataset` that checks each batch of `dataset` before returning it.

    Args:
        dataset: the user's PyDataset.
        vocab_size, max_len: the model's limits (ids in [0, vocab_size), 1..max_len long).
    """

    def __init__(self, dataset: keras.utils.PyDataset, vocab_size: int, max_len: int) -> None:
        super().__init__(workers=dataset.workers, use_multiprocessing=dataset.use_multiprocessing,
                         max_queue_size=dataset.max_queue_size)
        self.dataset, self.vocab_size, self.max_len = dataset, vocab_size, max_len

    def __getitem__(self, index):
        return check_batch(self.dataset[index], self.vocab_size, self.max_len)

    @property
    def num_batches(self):
        return self.dataset.num_batches

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


def _is_tf_dataset(x) -> bool:
    return type(x).__module__.startswith("tensorflow.python.data")


def _checked_tf_dataset(dataset, vocab_size: int, max_len: int):
    import tensorflow as tf

    def check(ids):
        try:
            _check(ids, vocab_size, max_len)
        except BadBatchError as error:
            _raised["error"] = error
            raise
        return np.bool_(True)

    def checked(*element):
        batch = element[0] if len(element) == 1 else element
        ids = token_ids_of(batch)
        if ids is None:
            return batch
        # stateful: a stateless op that only gates an identity may be optimized away
        passed = tf.numpy_function(check, [ids], tf.bool, stateful=True)
        with tf.control_dependencies([passed]):
            ids_checked = tf.identity(ids)
        return _replace_ids(batch, ids_checked)

    return dataset.map(checked)


def _replace_ids(batch, ids):
    x = batch[0] if isinstance(batch, tuple) else batch
    if isinstance(x, dict):
        x = {**x, INPUT_NAME: ids}
    else:
        x = ids
    return (x, *batch[1:]) if isinstance(batch, tuple) else x
