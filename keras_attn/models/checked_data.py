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
them under "token_ids". Integer labels `y` are checked too (`check_label_values`) when the
model's number of logits is given: Keras refuses a label outside `[0, num_labels)` only in
eager TensorFlow; under XLA the loss goes NaN and on JAX it trains on, with a finite loss.
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


# Keras says "received 4 input tensors" or "Index 1 is not uniform", never "pad".
RAGGED = ("token_ids must be one [batch, sequence] array: pad every sequence with 0 (the padding "
          "id) to the longest, e.g. keras.utils.pad_sequences(ids, padding='post'), or use "
          "export.artifact.token_ids.check_token_ids, which pads lists of id lists. "
          "Received: {received}")


class BadBatchError(ValueError):
    """A drawn batch's ids failed `check_token_values` (its message); a `ValueError`."""


def check_label_values(labels, num_labels: int) -> None:
    """Raises ValueError unless sparse labels are integer indices in `[0, num_labels)`.

    Labels are sparse when they do not already hold one value per logit (a one-hot or soft
    `[..., num_labels]` target is left alone): a classifier's `[batch]` or `[batch, 1]`, a
    language model's `[batch, n]` next-token ids. Strings are refused with what to do (Keras
    says `Invalid dtype: str96`), as are floats that are not whole numbers.

    Args:
        labels: array-like of labels.
        num_labels: the model's logits per prediction (the last axis of its output).
    """
    values = np.asarray(labels)
    if values.dtype.kind in "USO":
        example = f" (e.g. {values.flat[0].item()!r})" if values.size else ""
        raise ValueError(_string_labels_message(num_labels, f"dtype {values.dtype}{example}"))
    if values.dtype.kind not in "biuf" or not values.size or (
            values.ndim and values.shape[-1] == num_labels and values.ndim > 1):
        return  # one value per logit (one-hot / soft targets), or nothing to check
    if values.dtype.kind == "f" and not np.all(np.isfinite(values) & (values == np.round(values))):
        raise ValueError(f"Labels must be integer class indices in [0, {num_labels}). Received: "
                         f"non-integer values, e.g. "
                         f"{values[values != np.round(values)].flat[0].item()!r}"
                         if np.all(np.isfinite(values)) else
                         f"Labels must be integer class indices in [0, {num_labels}). "
                         f"Received: a NaN or infinite label")
    if values.min() < 0 or values.max() >= num_labels:
        raise ValueError(f"Labels must be integer class indices in [0, {num_labels}), one per "
                         f"logit of the model's last axis. Received: labels from "
                         f"{values.min()} to {values.max()}")


def _string_labels_message(num_labels: int, received: str) -> str:
    return (f"Labels must be integer class indices in [0, {num_labels}), one per logit of the "
            f"model's last axis. Received: {received}; map label names to indices first "
            f"(`keras_attn.data.records.load_texts` does, as does `keras.layers.StringLookup`)")


def token_ids_of(batch):
    """The ids tensor of one batch (see the module docstring), or None if it holds none."""
    x = batch[0] if isinstance(batch, tuple) else batch
    if isinstance(x, dict):
        x = x.get(INPUT_NAME)
    return x if hasattr(x, "shape") else None


def labels_of(batch):
    """The labels of one batch `(x, y, ...)`, or None if it holds none."""
    if isinstance(batch, tuple) and len(batch) > 1 and hasattr(batch[1], "shape"):
        return batch[1]
    return None


def check_batch(batch, vocab_size: int, max_len: int, num_labels: int | None = None):
    """Raises the check's ValueError about the batch's ids (and labels, when `num_labels` is
    given); returns the batch unchanged."""
    ids, labels = token_ids_of(batch), labels_of(batch)
    if ids is not None:
        _check(np.asarray(ids), vocab_size, max_len)
    if labels is not None and num_labels is not None:
        _check_labels(np.asarray(labels), num_labels)
    return batch


def _check(ids: np.ndarray, vocab_size: int, max_len: int) -> None:
    try:
        check_token_values(ids, vocab_size, max_len)
    except ValueError as error:
        raise BadBatchError(str(error)) from None


def _check_labels(labels: np.ndarray, num_labels: int) -> None:
    try:
        check_label_values(labels, num_labels)
    except ValueError as error:
        raise BadBatchError(str(error)) from None


def checked_data(x, vocab_size: int, max_len: int, num_labels: int | None = None):
    """`x` whose batches are checked as they are drawn, if it is a dataset, generator or
    PyDataset; anything else is returned as it is (arrays are checked up front). Labels are
    checked too when `num_labels` is given."""
    if _is_tf_dataset(x):
        return _checked_tf_dataset(x, vocab_size, max_len, num_labels)
    if isinstance(x, keras.utils.PyDataset):
        return CheckedPyDataset(x, vocab_size, max_len, num_labels)
    if isinstance(x, collections.abc.Iterator):
        return (check_batch(batch, vocab_size, max_len, num_labels) for batch in x)
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
        num_labels: the model's logits per prediction, to check labels against; None: not.
    """

    def __init__(self, dataset: keras.utils.PyDataset, vocab_size: int, max_len: int,
                 num_labels: int | None = None) -> None:
        super().__init__(workers=dataset.workers, use_multiprocessing=dataset.use_multiprocessing,
                         max_queue_size=dataset.max_queue_size)
        self.dataset, self.vocab_size, self.max_len = dataset, vocab_size, max_len
        self.num_labels = num_labels

    def __getitem__(self, index):
        return check_batch(self.dataset[index], self.vocab_size, self.max_len, self.num_labels)

    @property
    def num_batches(self):
        return self.dataset.num_batches

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


def _is_tf_dataset(x) -> bool:
    return type(x).__module__.startswith("tensorflow.python.data")


def _checked_tf_dataset(dataset, vocab_size: int, max_len: int, num_labels: int | None = None):
    import tensorflow as tf

    ids_spec = token_ids_of(dataset.element_spec)  # specs nest as the batches do
    if isinstance(ids_spec, tf.RaggedTensorSpec):  # refused before Keras traces a step on it
        raise ValueError(RAGGED.format(received=f"a tf.data.Dataset of tf.RaggedTensor batches "
                                                f"{ids_spec.shape} (`.map(lambda x: "
                                                f"x.to_tensor())` pads them with 0)"))

    labels_spec = labels_of(dataset.element_spec)
    if num_labels is not None and getattr(labels_spec, "dtype", None) == tf.string:
        # refused here: the loss's string -> int cast fails when the step is built, before any
        # batch is drawn and checked
        raise ValueError(_string_labels_message(num_labels, "a tf.data.Dataset of tf.string "
                                                            "labels"))

    def check(ids, *labels):
        try:
            _check(ids, vocab_size, max_len)
            if labels:
                _check_labels(labels[0], num_labels)
        except BadBatchError as error:
            _raised["error"] = error
            raise
        return np.bool_(True)

    def checked(*element):
        batch = element[0] if len(element) == 1 else element
        ids, labels = token_ids_of(batch), labels_of(batch)
        if ids is None:
            return batch
        checked_tensors = [ids] if labels is None or num_labels is None else [ids, labels]
        # stateful: a stateless op that only gates an identity may be optimized away
        passed = tf.numpy_function(check, checked_tensors, tf.bool, stateful=True)
        with tf.control_dependencies([passed]):  # nothing downstream runs before the check
            ids_checked = tf.identity(ids)
            batch = _replace_ids(batch, ids_checked)
            if len(checked_tensors) == 2:  # the loss's cast of a label waits for it too
                batch = (batch[0], tf.identity(labels), *batch[2:])
        return batch

    return dataset.map(checked)


def _replace_ids(batch, ids):
    x = batch[0] if isinstance(batch, tuple) else batch
    if isinstance(x, dict):
        x = {**x, INPUT_NAME: ids}
    else:
        x = ids
    return (x, *batch[1:]) if isinstance(batch, tuple) else x
