"""The inputs of the parity battery: the token ids every runtime is run on.

The battery is a fixed-seed set of batches (batch sizes 1, 2, 7, 32; lengths 1, 2,
max_len // 2, max_len; ragged batches right-padded with id 0), `parity_cases`. A quantized
candidate is checked on representative ids instead when there are some (the run's held-out
token ids, `check_representative_ids`, `representative_cases`), and for row independence on
the same rows in several batches (`row_contexts`); model.int8.onnx is calibrated on the same
data (`calibration_data`). `export.verification.parity` runs them and compares.

NumPy and the standard library only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from export.artifact.manifest import REPRESENTATIVE_FILENAME
from export.artifact.token_ids import PADDING_ID

BATCH_SIZES = (1, 2, 7, 32)
SEED = 0
# The row-independence check: this many rows, each run alone and in every context, and
# random batch-mates enough to fill a batch of ROW_CHECK_BATCH.
ROW_CHECK_ROWS = 16
ROW_CHECK_BATCH = 32
# Representative ids are run through a quantized candidate in batches of this many rows.
REPRESENTATIVE_BATCH = 32


@dataclasses.dataclass(frozen=True)
class ParityCase:
    """One batch of the battery: `name` says how it was made, e.g. "batch=7 ragged"."""

    name: str
    token_ids: np.ndarray


def parity_cases(
    max_len: int,
    vocab_size: int,
    seed: int = SEED,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
) -> list[ParityCase]:
    """The battery for a model: full-length batches at every (batch size, length), then one
    ragged batch per batch size whose rows run from 1 id to max_len ids, padded with 0.

    Real ids are drawn from [1, vocab_size) so that only the padding is id 0.

    Example:
        >>> [case.name for case in parity_cases(4, 10, batch_sizes=(2,))]
        ['batch=2 length=1', 'batch=2 length=2', 'batch=2 length=4', 'batch=2 ragged']
    """
    rng = np.random.default_rng(seed)
    lengths = sorted({1, 2, max(1, max_len // 2), max_len} & set(range(1, max_len + 1)))
    cases = []
    for batch in batch_sizes:
        for length in lengths:
            ids = rng.integers(1, vocab_size, size=(batch, length), dtype=np.int32)
            cases.append(ParityCase(f"batch={batch} length={length}", ids))
        cases.append(ParityCase(f"batch={batch} ragged", _ragged_batch(rng, batch, max_len,
                                                                         vocab_size)))
    return cases


def _ragged_batch(rng: np.random.Generator, batch: int, max_len: int, vocab_size: int):
    """Rows of random lengths; the first is max_len long and the second 1 id long, so that
    every ragged batch of two or more rows has both a full row and a mostly-padded one."""
    row_lengths = rng.integers(1, max_len + 1, size=batch)
    row_lengths[0] = max_len
    if batch > 1:
        row_lengths[1] = 1
    ids = np.full((batch, max_len), PADDING_ID, np.int32)
    for row, length in enumerate(row_lengths):
        ids[row, :length] = rng.integers(1, vocab_size, size=length, dtype=np.int32)
    return ids


def check_representative_ids(token_ids: Any, max_len: int, vocab_size: int) -> np.ndarray:
    """Checks representative token ids (e.g. a run's held-out texts, tokenized) for a model.

    Args:
        token_ids: integers `[n, width]`, n >= 1, 1 <= width <= max_len; every row holds at
            least one real id and is right-padded with 0 (the padding id).
        max_len, vocab_size: the model's.

    Returns:
        The ids as an int32 array `[n, width]`.

    Raises:
        ValueError: naming what is wrong, what is allowed and what was received.
    """
    ids = np.asarray(token_ids)
    allowed = (f"Expected integer token ids [n, width] with n >= 1 and 1 <= width <= "
               f"max_len={max_len}, each id in [0, vocab_size={vocab_size}), every row "
               "right-padded with 0 and holding at least one real id.")
    if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"representative_ids must be integers. {allowed} Received: dtype "
                         f"{ids.dtype}")
    if ids.ndim != 2 or not ids.size or ids.shape[1] > max_len:
        raise ValueError(f"representative_ids has the wrong shape. {allowed} Received: shape "
                         f"{ids.shape}")
    outside = np.argwhere((ids < 0) | (ids >= vocab_size))
    if len(outside):
        row, column = outside[0]
        raise ValueError(f"representative_ids holds an id outside [0, vocab_size="
                         f"{vocab_size}). {allowed} Received: id {ids[row, column]} at "
                         f"[{row}, {column}] ({len(outside)} id(s) out of range)")
    real = ids != PADDING_ID
    empty = np.flatnonzero(~real.any(axis=1))
    if len(empty):
        raise ValueError(f"representative_ids has rows of padding only. {allowed} Received: "
                         f"{len(empty)} such row(s), the first at row {empty[0]}")
    # Right-padded: once a row reaches padding, it holds nothing else.
    holes = np.flatnonzero((np.diff(real.astype(np.int8), axis=1) > 0).any(axis=1))
    if len(holes):
        raise ValueError(f"representative_ids has a real id after padding. {allowed} "
                         f"Received: row {holes[0]}: {ids[holes[0]].tolist()}")
    return ids.astype(np.int32)


def representative_cases(token_ids: np.ndarray,
                         batch_size: int = REPRESENTATIVE_BATCH) -> list[ParityCase]:
    """Checked representative ids (`check_representative_ids`) as battery cases of
    `batch_size` rows, e.g. "representative rows 0-31"."""
    return [ParityCase(f"representative rows {start}-{start + len(chunk) - 1}", chunk)
            for start in range(0, len(token_ids), batch_size)
            for chunk in (token_ids[start:start + batch_size],)]


@dataclasses.dataclass(frozen=True)
class RowContexts:
    """The rows of the row-independence check, and the batches that hold them.

    Attributes:
        rows: each row's real ids (no padding), as run alone: `[1, length]`.
        batches: (name, token_ids [batch, width], the batch row holding each of `rows`).
    """

    rows: tuple[np.ndarray, ...]
    batches: tuple[tuple[str, np.ndarray, tuple[int, ...]], ...]


def row_contexts(token_ids: np.ndarray, max_len: int, vocab_size: int, seed: int = SEED,
                 rows: int = ROW_CHECK_ROWS, batch_size: int = ROW_CHECK_BATCH) -> RowContexts:
    """The first `rows` rows of `token_ids` (right-padded, as `check_representative_ids`
    returns them) in three kinds of batch: together at their width, padded with 0 to max_len,
    and among random batch-mates (ids from [1, vocab_size), lengths 1 to max_len, one full
    and one of a single id) at max_len, twice, at random places.

    Example:
        >>> ids = np.array([[5, 7, 0], [3, 0, 0]])
        >>> names = [name for name, _, _ in row_contexts(ids, 4, 10, batch_size=4).batches]
        >>> names[:2], names[2:]
        (['together, width 3', 'padded to max_len=4'], ['among 2 random rows (1)', \
'among 2 random rows (2)'])
    """
    ids = np.asarray(token_ids, np.int32)[:rows]
    lengths = (ids != PADDING_ID).sum(axis=1)
    alone = tuple(row[:length][None] for row, length in zip(ids, lengths, strict=True))
    count = len(ids)
    padded = np.pad(ids, ((0, 0), (0, max_len - ids.shape[1])))
    batches = [(f"together, width {ids.shape[1]}", ids, tuple(range(count)))]
    if ids.shape[1] < max_len:
        batches.append((f"padded to max_len={max_len}", padded, tuple(range(count))))
    rng = np.random.default_rng(seed)
    mates = max(batch_size - count, 2)
    for attempt in (1, 2):
        batch = np.empty((count + mates, max_len), np.int32)
        places = rng.permutation(count + mates)
        batch[places[:count]] = padded
        batch[places[count:]] = _ragged_batch(rng, mates, max_len, vocab_size)
        batches.append((f"among {mates} random rows ({attempt})", batch,
                        tuple(int(place) for place in places[:count])))
    return RowContexts(alone, tuple(batches))


def calibration_data(max_len: int, vocab_size: int, representative_ids: np.ndarray | None,
                     ) -> tuple[list[np.ndarray], str]:
    """(batches of token ids to calibrate model.int8.onnx on, what they are for the manifest):
    `representative_ids` (checked, `check_representative_ids`) in batches of
    `REPRESENTATIVE_BATCH`, or without them the parity battery's random ids for `max_len` and
    `vocab_size`. The int8 file is then checked on the same data."""
    if representative_ids is not None:
        return ([case.token_ids for case in representative_cases(representative_ids)],
                f"{len(representative_ids)} representative rows given to export_model "
                f"(kept as {REPRESENTATIVE_FILENAME})")
    return ([case.token_ids for case in parity_cases(max_len, vocab_size)],
            "the parity battery's random ids: export_model was given no representative_ids")
