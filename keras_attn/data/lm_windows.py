"""A language model's data: raw texts read, split into training and validation, packed.

Raw text becomes training windows in three steps (`keras-attn train-lm`,
`keras_attn.training.language_model.train_language_model`):

1. Read (`load_lm_texts`): the text-only view of the one record reader,
   `keras_attn.data.records.iter_records`: a folder of .txt files (searched recursively, one
   text per file), a .txt file with one text per line (a line ends at "\\n" or "\\r\\n" only,
   as `keras_attn.data.records.split_lines`), or a .csv / .jsonl file's text column. Blank
   texts are skipped.
2. Split texts (not windows) into training and validation, shuffled with the seed
   (`split_texts`), so that no text is on both sides; the tokenizer is trained on the training
   texts only.
3. Pack: every text's ids followed by the end-of-text id (``tokenizer.vocab_size``, one id more
   than the tokenizer has, so no text can produce it), all concatenated (`token_stream`), then
   cut into windows of `max_len` + 1 ids (`pack_windows`): the model reads ids 0..max_len-1
   and predicts ids 1..max_len. No window is padded; the tail shorter than a window is dropped.

Plain Python and NumPy, as the rest of `keras_attn.data`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from export.artifact.tokenizer import Tokenizer
from keras_attn.data.records import ACCEPTED_TEXT, DataError, iter_records


def load_lm_texts(path: str | os.PathLike[str], text_column: str = "text") -> list[str]:
    """Reads raw texts for a language model (the text-only view of `iter_records`); blank
    texts are skipped.

    Args:
        path: a folder of .txt files (recursive), a .txt file (one text per line), or a .csv
            (with a header row) / .jsonl (one JSON object per line) file.
        text_column: the .csv column / .jsonl key holding the text; no other column is read.

    Returns:
        The texts, in file order (folders: files sorted by path).

    Raises:
        DataError: the reader's errors (a missing path, an unsupported extension, a file that
            is not UTF-8, a missing column, a malformed line, a text that is not a string:
            see `keras_attn.data.records`), or no text at all; the message names the file.
    """
    texts = [text for text, _, _ in iter_records(path, text_column, label_column=None)
             if text.strip()]
    if not texts:
        raise DataError(f"No text to learn from: every text is empty or blank. Expected "
                        f"{ACCEPTED_TEXT}. Received: path='{Path(path)}'")
    return texts


def split_texts(texts: Sequence[str], validation_fraction: float,
                seed: int) -> tuple[list[str], list[str]]:
    """Shuffles the texts with `seed` and holds out round(n * fraction) of them (at least 1).

    Raises:
        DataError: fewer than two texts, or a fraction outside (0, 1).
    """
    if not 0 < validation_fraction < 1:
        raise DataError(f"The validation fraction must lie strictly between 0 and 1. "
                        f"Received: {validation_fraction}")
    if len(texts) < 2:
        raise DataError(f"A language model needs at least two texts: one to train on, one to "
                        f"validate on. Received: {len(texts)} text(s)")
    order = np.random.default_rng(seed).permutation(len(texts))
    held_out = min(len(texts) - 1, max(1, round(len(texts) * validation_fraction)))
    return ([texts[i] for i in order[held_out:]], [texts[i] for i in order[:held_out]])


def token_stream(tokenizer: Tokenizer, texts: Sequence[str]) -> np.ndarray:
    """Every text's ids followed by the end-of-text id (``tokenizer.vocab_size``): int64 `[n]`."""
    end_of_text = tokenizer.vocab_size
    pieces = []
    for row in tokenizer.encode_batch(list(texts)):
        pieces.extend([row[row != 0], [end_of_text]])
    return np.concatenate(pieces).astype(np.int64)


def pack_windows(stream: np.ndarray, max_len: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Cuts a token stream into (inputs, targets), each int64 `[windows, max_len]`; targets are
    the inputs shifted by one. The tail shorter than one window is dropped.

    Raises:
        DataError: the stream has fewer than max_len + 1 ids (not one window).
    """
    windows = (len(stream) - 1) // max_len
    if windows < 1:
        raise DataError(f"The {split} texts give {len(stream)} tokens (end-of-text ids "
                        f"included); one window needs max_len + 1 = {max_len + 1}. Give more "
                        f"text or a smaller --max-len. Received: max_len={max_len}")
    used = windows * max_len
    return (stream[:used].reshape(windows, max_len),
            stream[1:used + 1].reshape(windows, max_len))
