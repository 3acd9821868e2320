"""Token-id batches checked and padded before they reach a runtime.

Every serving path (the onnxruntime predictor, the CLI) sends ids through `check_token_ids`
first, because the runtimes disagree on bad input: onnxruntime's Gather wraps a negative id
around silently, TensorFlow raises, and neither knows max_len. NumPy and the standard library
only: this module is imported where TensorFlow must never be.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PADDING_ID = 0


# The two messages below read as keras_attn/layers/token_checks.py's do, so that a user sees the
# same
# words from Keras, the SavedModel and onnxruntime; that module imports keras, this one must not.
def length_message(max_len: int, received: str) -> str:
    """What a sequence of the wrong length is told; `received` says what came in."""
    return (
        f"Sequence length must be between 1 and max_len={max_len}, the number of learned "
        f"position vectors. Received: {received}"
    )


def range_message(vocab_size: int, received: str) -> str:
    """What an id outside [0, vocab_size) is told; `received` says which id and where."""
    return f"token_ids must lie in [0, vocab_size={vocab_size}). Received: {received}"


EMPTY_BATCH_MESSAGE = "token_ids must hold at least one sequence. Received: an empty batch"


def object_ids_message(array: np.ndarray, where: str = "token_ids") -> str:
    """What ids NumPy can hold only as Python objects are told (JSON null, a string among
    numbers, an integer beyond 64 bits: `np.asarray` gives dtype object), naming the first
    value that is not a 64-bit integer."""
    culprits = [value for value in array.flat if not _fits_64_bits(value)]
    if not culprits:
        return f"{where} must be an integer array (int32 or int64). Received: dtype object"
    return (f"{where} must hold integer token ids that fit in 64 bits. Received: values NumPy "
            f"can hold only as Python objects (e.g. {culprits[0]!r})")


def padding_only_message(received: str) -> str:
    """What a sequence of padding only is told; `received` says which sequence."""
    return (
        f"Each sequence needs at least one non-padding id (padding is id {PADDING_ID}). "
        f"Received: {received}"
    )


def check_token_ids(token_ids: Any, vocab_size: int, max_len: int) -> np.ndarray:
    """Validates a batch of token ids and returns it as int32 `[batch, sequence]`.

    Args:
        token_ids: a 2-D integer array `[batch, sequence]` (already padded with 0), a 1-D
            integer array (one sequence), or a list of id lists of any lengths (padded here
            with 0 to the longest).
        vocab_size: ids must lie in `[0, vocab_size)`; 0 is padding.
        max_len: the longest sequence the model accepts.

    Returns:
        A C-contiguous int32 array of shape `[batch, sequence]`, 1 <= sequence <= max_len.

    Raises:
        ValueError: on a non-integer dtype (floats, bools, strings), rank above 2, an empty
            batch or sequence, a sequence longer than max_len, an id outside
            `[0, vocab_size)`, or a sequence of padding (id 0) only. The message says what is
            allowed and what was received.

    Example:
        >>> check_token_ids([[5, 3, 9], [7]], vocab_size=10, max_len=4).tolist()
        [[5, 3, 9], [7, 0, 0]]
    """
    if isinstance(token_ids, (list, tuple)) and len(token_ids) == 0:
        raise ValueError("token_ids must hold at least one sequence. Received: an empty list")
    if _is_ragged(token_ids):
        array = _pad_ragged(token_ids, max_len)
    else:
        array = as_id_array(token_ids)
        _check_dtype(array)
        if array.ndim == 1:
            array = array[np.newaxis, :]
        elif array.ndim != 2:
            raise ValueError(
                "token_ids must be one sequence (rank 1) or a batch [batch, sequence] "
                f"(rank 2). Received: an array of rank {array.ndim} with shape {array.shape}"
            )
    batch, length = array.shape
    if batch == 0:
        raise ValueError(EMPTY_BATCH_MESSAGE)
    if not 1 <= length <= max_len:
        raise ValueError(length_message(max_len, f"sequence length {length} (token_ids of "
                                                  f"shape {array.shape})"))
    _check_range(array, vocab_size)
    _check_not_all_padding(array)
    return np.ascontiguousarray(array, dtype=np.int32)


def _is_ragged(token_ids: Any) -> bool:
    """True for a list/tuple of sequences (lists or 1-D arrays) rather than one array."""
    return (
        isinstance(token_ids, (list, tuple))
        and len(token_ids) > 0
        and all(isinstance(row, (Sequence, np.ndarray)) for row in token_ids)
        and not any(isinstance(row, (str, bytes)) for row in token_ids)
    )


def as_id_array(token_ids: Any, where: str = "token_ids") -> np.ndarray:
    """`np.asarray` for ids, before any cast: NumPy's complaint about mixed nesting turned into
    ours, and a boolean among integers refused (NumPy reads ``[1, True]`` as the int64 ids
    ``[1, 1]``). The dtype is left as NumPy reads it: the caller checks it is an integer one.

    Args:
        token_ids: an array, or (nested) lists / tuples of numbers.
        where: the name the messages give the values (``"token_ids"``, ``"sequence 2"``).

    Returns:
        The array, of any dtype and rank.

    Raises:
        ValueError: NumPy cannot read the nesting as an array, or a list holds a boolean
            among integers.
    """
    try:
        array = np.asarray(token_ids)
    except ValueError as error:
        raise ValueError(
            f"{where} must be an integer array or a list of id lists. Received: "
            f"{type(token_ids).__name__} that NumPy cannot read as an array ({error})"
        ) from None
    if np.issubdtype(array.dtype, np.integer) and isinstance(token_ids, (list, tuple)):
        flag = _first_bool(token_ids)
        if flag is not None:
            raise ValueError(f"{where} must hold integers, and a boolean is not one. "
                             f"Received: {flag!r} among the integers")
    return array


def _first_bool(values: list | tuple) -> bool | None:
    """The first boolean (Python or NumPy) in nested lists / tuples, else None."""
    for value in values:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (list, tuple)):
            found = _first_bool(value)
            if found is not None:
                return found
    return None


def _pad_ragged(rows: Sequence[Any], max_len: int) -> np.ndarray:
    """Right-pads id lists with `PADDING_ID` to the longest one."""
    arrays = [as_id_array(row, where=f"sequence {index}") for index, row in enumerate(rows)]
    for index, row in enumerate(arrays):
        if row.ndim != 1:
            raise ValueError(
                "A list of sequences must hold flat id lists. Received: sequence "
                f"{index} of shape {row.shape}"
            )
        if not 1 <= row.size <= max_len:
            raise ValueError(length_message(max_len, f"sequence length {row.size} "
                                                     f"(sequence {index})"))
        _check_dtype(row, where=f"sequence {index}")
    padded = np.full((len(arrays), max(row.size for row in arrays)), PADDING_ID, np.int64)
    for index, row in enumerate(arrays):
        padded[index, : row.size] = row
    return padded


def _check_dtype(array: np.ndarray, where: str = "token_ids") -> None:
    """Integers only: a float id is a bug upstream, a bool or string is never an id."""
    if array.dtype == object:  # null, a string among numbers, or an integer beyond 64 bits
        raise ValueError(object_ids_message(array, where))
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{where} must hold integer token ids. Received: dtype {array.dtype}"
            + (f" (e.g. {array.flat[0].item()!r})" if array.size else "")
        )


def _fits_64_bits(value: Any) -> bool:
    """An integer (not a bool) that int64 or uint64 can hold."""
    return (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
            and -(2**63) <= int(value) < 2**64)


def _check_range(array: np.ndarray, vocab_size: int) -> None:
    """Ids must lie in [0, vocab_size); reports the first offending id and its position."""
    bad = (array < 0) | (array >= vocab_size)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(range_message(
            vocab_size, f"id {int(array[row, column])} at [{row}, {column}] "
            f"({int(bad.sum())} id(s) out of range)"))


def _check_not_all_padding(array: np.ndarray) -> None:
    """A row of padding only has no token to read: its logits would come from the model's
    biases alone, a confident-looking answer about nothing."""
    empty = np.flatnonzero((array == PADDING_ID).all(axis=1))
    if empty.size:
        raise ValueError(padding_only_message(
            f"sequence {int(empty[0])} is all padding"
            + (f" ({empty.size} such sequences: {empty[:10].tolist()})" if empty.size > 1
               else "")))
