"""Training data streamed from its files: memory stays flat however many texts there are.

`keras-attn train --stream` reads the data (a .jsonl or .csv file, or a folder of class
sub-folders, as `keras_attn.data.load_texts` reads them, with the same checks and messages)
one record at a time, and never holds all texts or all token ids:

1. `scan_stream` reads every record once: checks it, counts each class in each split and
   hashes the data (sha256, so that a rerun resumes only on the same data).
2. A record's split comes from its position and the seed (`in_validation`: a hash, so nothing
   per record is kept): about `validation_fraction` of each class is held out, not exactly
   `round(count x fraction)` as `split_train_validation`'s stratified split does.
3. The tokenizer learns from a seeded sample of at most `TOKENIZER_SAMPLE` training texts
   (`sample_texts`, reservoir sampling).
4. `TextStream.dataset()` is a `tf.data` pipeline: one split's records in file order, or
   through a shuffle buffer of `shuffle_buffer` records seeded by (seed, epoch), so that a
   resumed run goes on with the orders of the epochs it had not run; tokenized in chunks by
   the Hugging Face tokenizer inside the pipeline; batched by length
   (`tf.data.Dataset.bucket_by_sequence_length`) into `keras_attn.buckets`'s widths (powers
   of two from 16 up to `max_len`), each batch padded to its bucket's width; prefetched.

What stays in memory: the shuffle buffer, the tokenizer's sample, under one batch per bucket,
and the prefetched batches. Batch shapes: a full batch per width, and each bucket's last,
short batch of an epoch (the same every epoch), so XLA compiles at most 2 x widths shapes.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from keras_attn.buckets import bucket_widths
from keras_attn.data import (
    ACCEPTED,
    DataError,
    _check_class_names,
    _check_columns,
    _label_name,
    _read_text,
    parse_jsonl_lines,
    sorted_class_names,
    text_and_label,
)

TOKENIZER_SAMPLE = 100_000
SHUFFLE_BUFFER = 10_000
TOKENIZE_CHUNK = 512  # texts per call of the Hugging Face tokenizer
SPLITS = ("train", "validation")


def iter_records(path: Path, text_column: str = "text",
                 label_column: str = "label") -> Iterator[tuple[str, str, str]]:
    """(text, label name, where) of every record, read one at a time; see `load_texts`.

    Raises:
        DataError: as `load_texts` (a missing path, an unknown extension, a bad line, ...).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"The data path does not exist. Expected {ACCEPTED}. "
                        f"Received: path='{path}'")
    if path.is_dir():
        yield from _folder_records(path)
    elif path.suffix.lower() == ".jsonl":
        for record, where in parse_jsonl_lines(_lines(path), path):
            yield (*text_and_label(record, text_column, label_column, where), where)
    elif path.suffix.lower() == ".csv":
        yield from _csv_records(path, text_column, label_column)
    else:
        raise DataError(f"Unsupported data file extension '{path.suffix}'. Expected {ACCEPTED}. "
                        f"Received: path='{path}'")


def _lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 file, one at a time, each ended by "\\n" or "\\r\\n" only (as
    `data.split_lines`: a file object in binary mode splits at b"\\n" alone)."""
    with open(path, "rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise DataError(f"The file is not valid UTF-8 text (line {number}); only UTF-8 "
                                f"is read. Received: path='{path}'") from None
            yield line.removesuffix("\n").removesuffix("\r")


def _csv_records(path: Path, text_column: str,
                 label_column: str) -> Iterator[tuple[str, str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.DictReader(file)
        try:
            _check_columns(reader.fieldnames or [], text_column, label_column, f"path='{path}'")
            for row in reader:
                where = f"line {reader.line_num} of '{path}'"
                if row[text_column] is None or row[label_column] is None:
                    raise DataError(f"Line {reader.line_num} has fewer fields than the header. "
                                    f"Received: path='{path}'")
                yield row[text_column], _label_name(row[label_column], where), where
        except csv.Error as error:
            raise DataError(f"The CSV file is malformed at line {reader.line_num} ({error}). "
                            f"Received: path='{path}'") from None
        except UnicodeDecodeError:
            raise DataError(f"The file is not valid UTF-8 text (near line {reader.line_num}); "
                            f"only UTF-8 is read. Received: path='{path}'") from None


def _folder_records(path: Path) -> Iterator[tuple[str, str, str]]:
    folders = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise DataError(f"A data folder needs one sub-folder of .txt files per class, and at least "
                        f"two classes. Received: path='{path}' with sub-folders {folders}")
    for name in folders:
        for file in sorted(p for p in (path / name).rglob("*.txt") if p.is_file()):
            yield _read_text(file), name, f"'{file}'"


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
        for text, label, where in iter_records(self.path, self.text_column, self.label_column):
            if label not in index:
                continue  # a class left out by class_names
            if in_validation(kept, self.seed, self.validation_fraction) == held_out:
                yield text, index[label], where
            kept += 1

    def size(self, split: str) -> int:
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
    digest, kept = hashlib.sha256(), 0
    for text, label, _ in iter_records(Path(path), text_column, label_column):
        if wanted is not None and label not in wanted:
            continue
        digest.update(text.encode("utf-8") + b"\0" + label.encode("utf-8") + b"\0")
        counts.setdefault(label, [0, 0])[in_validation(kept, seed, validation_fraction)] += 1
        kept += 1
    found = sorted_class_names(counts)
    missing = [name for name in wanted or [] if name not in counts]
    if missing:
        raise DataError(f"No examples of the classes {missing} given in class_names; the "
                        f"labels found are {found}. Received: path='{path}'")
    names = wanted or found
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
        tokenizer: an `export.tokenizer.Tokenizer`.
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

    def dataset(self, prefetch: int = 2):
        """The pipeline of the module docstring; each iteration (Keras makes one per epoch)
        runs the next epoch's order."""
        import tensorflow as tf

        def texts_and_labels():
            epoch, self.epoch = self.epoch, self.epoch + 1
            for text, label, _ in self.records(epoch):
                yield text, label

        def tokenize(texts, labels):
            ids = tf.numpy_function(
                lambda batch: self.encode([text.decode("utf-8") for text in batch]),
                [texts], tf.int32, stateful=False)
            ids.set_shape((None, None))
            return ids, tf.math.count_nonzero(ids, axis=1, dtype=tf.int32), labels

        dataset = tf.data.Dataset.from_generator(
            texts_and_labels, output_signature=(tf.TensorSpec((), tf.string),
                                                tf.TensorSpec((), tf.int32)))
        dataset = (dataset.batch(TOKENIZE_CHUNK).map(tokenize).unbatch()
                   .map(lambda ids, length, label: (ids[:length], label)))
        dataset = dataset.bucket_by_sequence_length(
            lambda ids, label: tf.shape(ids)[0],
            bucket_boundaries=[width + 1 for width in self.widths],  # bucket i: <= widths[i]
            bucket_batch_sizes=[self.batch_size] * (len(self.widths) + 1),
            pad_to_bucket_boundary=True)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(self)))
        return dataset.prefetch(prefetch)
