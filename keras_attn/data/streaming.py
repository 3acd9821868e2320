"""Training data streamed from its files: memory stays flat however many texts there are.

`keras-attn train --stream` reads the data (a .jsonl or .csv file, or a folder of class
sub-folders) through the labelled view of the one record reader,
`keras_attn.data.records.iter_records`, as `load_texts` does, with the same checks and messages,
one record at a time, and never holds all texts or all token ids:

1. `scan_stream` reads every record once: checks it, counts each class in each split and
   hashes the data (sha256, so that a rerun resumes only on the same data).
2. A record's split comes from its position and the seed (`in_validation`: a hash, so nothing
   per record is kept): about `validation_fraction` of each class is held out, not exactly
   `round(count x fraction)` as `split_train_validation`'s stratified split does.
3. The tokenizer learns from a seeded sample of at most `TOKENIZER_SAMPLE` training texts
   (`sample_texts`, reservoir sampling).
4. `TextStream.dataset()` is a `tf.data` pipeline over a generator of batches, prefetched (the
   next batches are made in a background thread while the model trains): one split's records
   in file order, or through a shuffle buffer of `shuffle_buffer` records seeded by (seed,
   epoch), so that a resumed run goes on with the orders of the epochs it had not run;
   tokenized `TOKENIZE_CHUNK` texts at a time by the Hugging Face tokenizer; each text put in
   the narrowest of `keras_attn.data.buckets`'s widths that holds it (powers of two from 16 up to
   `max_len`), a bucket emitted as a batch padded to its width when full. The per-text work
   is plain Python: as tf.data ops per text (`unbatch`, `bucket_by_sequence_length`) it took
   ~0.5 ms a text, against ~0.17 ms here (8,000 texts, 2 shared cores).

What stays in memory: the shuffle buffer, the tokenizer's sample, under one batch per bucket,
one chunk of tokenized texts and the prefetched batches. Batch shapes: a full batch per width,
and each bucket's last, short batch of an epoch (the same every epoch), so XLA compiles at most
2 x widths shapes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from keras_attn.data.buckets import batches_dataset, bucket_widths
from keras_attn.data.records import (
    DataError,
    _check_class_names,
    iter_records,
    sorted_class_names,
)

TOKENIZER_SAMPLE = 100_000
SHUFFLE_BUFFER = 10_000
TOKENIZE_CHUNK = 512  # texts per call of the Hugging Face tokenizer
SPLITS = ("train", "validation")


def in_validation(index: int, seed: int, fraction: float) -> bool:
    """Whether record `index` (its position among the records kept) is held out: a seeded
    hash of the position below `fraction` (blake2b, the same in every process)."""
    digest = hashlib.blake2b(f"{seed}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") < fraction * 2.0 ** 64


@dataclasses.dataclass(frozen=True)
class StreamedData:
    """What `scan_stream` learned of a data path; `records` reads it again.

    Attributes:
        counts: records per split and class, int64 `[2, classes]` (row 0 train, 1 validation).
        sha256: of every kept record's text and label name, in file order.
    """

    path: Path
    text_column: str
    label_column: str
    class_names: list[str]
    validation_fraction: float
    seed: int
    counts: np.ndarray
    sha256: str

    def records(self, split: str) -> Iterator[tuple[str, int, str]]:
        """(text, label index, where) of one split ("train" or "validation"), file order."""
        index = {name: position for position, name in enumerate(self.class_names)}
        held_out = split == "validation"
        kept = 0
        # sorted, as scan_stream reads them: the same records in the same order
        for text, label, where in iter_records(self.path, self.text_column, self.label_column,
                                               sorted(self.class_names)):
            if label not in index:
                continue  # a class left out by class_names
            if in_validation(kept, self.seed, self.validation_fraction) == held_out:
                yield text, index[label], where
            kept += 1

    def size(self, split: str) -> int:
        """Records in `split` ("train" or "validation"), from the scan's counts."""
        return int(self.counts[SPLITS.index(split)].sum())


def scan_stream(path: str | Path, text_column: str = "text", label_column: str = "label",
                class_names: list[str] | None = None, validation_fraction: float = 0.2,
                seed: int = 0) -> StreamedData:
    """Reads every record once (see the module docstring); holds only per-class counts.

    Raises:
        DataError: bad data (as `load_texts`), fewer than two classes, a class without a
            training record, or no validation record.
    """
    if isinstance(validation_fraction, bool) or not 0 < validation_fraction < 1:
        raise DataError("validation_fraction must lie strictly between 0 and 1. "
                        f"Received: validation_fraction={validation_fraction!r}")
    wanted = _check_class_names(class_names)
    counts: dict[str, list[int]] = {}
    seen: set[str] = set()  # every label, wanted or not, for the message on a missing class
    digest, kept = hashlib.sha256(), 0
    # a folder's sub-folders read in name order (only the wanted ones), as `records` does
    for text, label, _ in iter_records(Path(path), text_column, label_column,
                                       sorted(wanted) if wanted is not None else None):
        seen.add(label)
        if wanted is not None and label not in wanted:
            continue
        digest.update(text.encode("utf-8") + b"\0" + label.encode("utf-8") + b"\0")
        counts.setdefault(label, [0, 0])[in_validation(kept, seed, validation_fraction)] += 1
        kept += 1
    missing = [name for name in wanted or [] if name not in counts]
    if missing:
        raise DataError(f"No examples of the classes {missing} given in class_names; the "
                        f"labels found are {sorted_class_names(seen)}. Received: path='{path}'")
    names = wanted or sorted_class_names(counts)
    if len(names) < 2:
        raise DataError(f"A classifier needs examples of at least two classes. Received: "
                        f"{kept} examples, classes {names}, path='{path}'")
    table = np.array([counts[name] for name in names], dtype=np.int64).T  # [2, classes]
    if not table[1].sum() or not table[0].all():
        raise DataError(f"Too few examples to hold out a validation set with "
                        f"validation_fraction={validation_fraction} and keep every class in "
                        f"training: train {table[0].tolist()}, validation {table[1].tolist()} "
                        f"per class {names}. Received: {kept} examples")
    return StreamedData(Path(path), text_column, label_column, names, validation_fraction,
                        seed, table, digest.hexdigest())


def sample_texts(data: StreamedData, limit: int = TOKENIZER_SAMPLE,
                 seed: int = 0) -> list[str]:
    """Up to `limit` training texts, a uniform seeded sample (reservoir sampling, Algorithm R),
    in file order when there are fewer."""
    rng, sample = np.random.default_rng(seed), []
    for seen, (text, _, _) in enumerate(data.records("train")):
        if seen < limit:
            sample.append(text)
        elif (slot := int(rng.integers(seen + 1))) < limit:
            sample[slot] = text
    return sample


class TextStream:
    """One split of a `StreamedData` as (ids int32 `[batch, width]`, labels int32 `[batch]`)
    batches by length: a `tf.data.Dataset` for `fit`, `evaluate` and `predict`.

    Args:
        data: from `scan_stream`.
        split: "train" or "validation".
        tokenizer: an `export.artifact.tokenizer.Tokenizer`.
        max_len: the widest bucket; longer texts keep their first `max_len` tokens.
        batch_size: the most texts in a batch.
        shuffle: a new order every epoch, through a buffer; False keeps the file's order.
        seed: epoch e's order comes from (seed, e).
        shuffle_buffer: records held for shuffling.

    Raises:
        DataError: from `count`, when a text has no token (naming where it stands).
    """

    def __init__(self, data: StreamedData, split: str, tokenizer, max_len: int,
                 batch_size: int, shuffle: bool = True, seed: int = 0,
                 shuffle_buffer: int = SHUFFLE_BUFFER) -> None:
        self.data, self.split, self.tokenizer = data, split, tokenizer
        self.max_len, self.batch_size = max_len, batch_size
        self.shuffle, self.seed, self.shuffle_buffer = shuffle, seed, shuffle_buffer
        self.widths = bucket_widths(max_len)
        self.epoch = 0
        self.bucket_sizes = self.count()

    def records(self, epoch: int) -> Iterator[tuple[str, int, str]]:
        """Epoch `epoch`'s records: file order, or through the seeded shuffle buffer."""
        records = self.data.records(self.split)
        if not self.shuffle:
            yield from records
            return
        rng = np.random.default_rng((self.seed, epoch))
        buffer = list(itertools.islice(records, self.shuffle_buffer))
        for record in records:
            slot = int(rng.integers(len(buffer)))
            buffer[slot], record = record, buffer[slot]
            yield record
        yield from (buffer[i] for i in rng.permutation(len(buffer)))

    def encode(self, texts: list[str]) -> np.ndarray:
        """Token ids int32 `[len(texts), <= max_len]`, right-padded with 0."""
        return self.tokenizer.encode_batch(texts, self.max_len)

    def count(self) -> np.ndarray:
        """Texts per bucket, int64 `[widths]`, from one pass of tokenizing.

        Raises:
            DataError: a text with no token at all.
        """
        sizes = np.zeros(len(self.widths), dtype=np.int64)
        records = self.data.records(self.split)
        while chunk := list(itertools.islice(records, TOKENIZE_CHUNK)):
            lengths = np.count_nonzero(self.encode([text for text, _, _ in chunk]), axis=1)
            if not lengths.all():
                text, _, where = chunk[int(np.argmin(lengths))]
                raise DataError(f"A text contains no words or symbols after tokenization; every "
                                f"text needs at least one token. Received: {text!r} at {where}")
            sizes += np.bincount(np.searchsorted(self.widths, lengths),
                                 minlength=len(self.widths))
        return sizes

    def __len__(self) -> int:
        """Batches per epoch: each bucket's texts in batches, its last one perhaps short."""
        return int(sum(-(-size // self.batch_size) for size in self.bucket_sizes))

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The next epoch's batches, as NumPy: ids int32 `[batch, width]`, labels int32
        `[batch]`. Records are tokenized `TOKENIZE_CHUNK` at a time; each text joins the
        narrowest bucket that holds it, and a bucket is emitted when full; at the end of the
        epoch each bucket's rest, in bucket order."""
        epoch, self.epoch = self.epoch, self.epoch + 1
        pending: list[list[tuple[np.ndarray, int]]] = [[] for _ in self.widths]
        records = self.records(epoch)
        while chunk := list(itertools.islice(records, TOKENIZE_CHUNK)):
            ids = self.encode([text for text, _, _ in chunk])
            lengths = np.count_nonzero(ids, axis=1)
            if not lengths.all():
                raise DataError(f"A text has no token: the data changed while training. "
                                f"Received: {chunk[int(np.argmin(lengths))][2]}")
            buckets = np.searchsorted(self.widths, lengths).tolist()
            for row, length, bucket, (_, label, _) in zip(ids, lengths.tolist(), buckets,
                                                          chunk, strict=True):
                pending[bucket].append((row[:length], label))
                if len(pending[bucket]) == self.batch_size:
                    yield _padded(pending[bucket], self.widths[bucket])
                    pending[bucket] = []
        for rows, width in zip(pending, self.widths, strict=True):
            if rows:
                yield _padded(rows, width)

    def dataset(self, prefetch: int = 2):
        """`iter(self)` as a `tf.data.Dataset` (`buckets.batches_dataset`): each iteration
        (Keras makes one per epoch) runs the next epoch's order; batches are made `prefetch`
        ahead in a background thread while the model trains."""
        return batches_dataset(self.__iter__, len(self), labels=True, prefetch=prefetch)


def _padded(rows: list[tuple[np.ndarray, int]], width: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids int32 `[len(rows), width]` right-padded with 0, labels int32 `[len(rows)]`)."""
    ids = np.zeros((len(rows), width), dtype=np.int32)
    for index, (row, _) in enumerate(rows):
        ids[index, :len(row)] = row
    return ids, np.array([label for _, label in rows], dtype=np.int32)
