"""Load the user's own labelled text: a folder of .txt files per class, a .csv or a .jsonl file.

Plain Python and NumPy: files are read here, so a bad file gets an error that names it (and its
line), instead of an error from deep inside a TensorFlow input pipeline.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.artifact.tokenizer import texts_without_tokens

ACCEPTED = "a folder with one sub-folder of .txt files per class, a .csv file or a .jsonl file"


class DataError(ValueError):
    """Bad input data: the message says what was wrong, what is allowed and what was received."""


@dataclass
class TextDataset:
    """Texts with integer labels that index ``class_names``.

    Args:
        texts: the examples.
        labels: one class index per text, in ``[0, len(class_names))``; stored as int32.
        class_names: the name of each class, index = label.
    """

    texts: list[str]
    labels: np.ndarray
    class_names: list[str]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int32).reshape(-1)
        if len(self.texts) != len(self.labels):
            raise DataError(f"Expected one label per text. Received: {len(self.texts)} texts "
                            f"and {len(self.labels)} labels")
        outside = self.labels[(self.labels < 0) | (self.labels >= len(self.class_names))]
        if outside.size:
            raise DataError(f"Labels must lie in [0, {len(self.class_names)}), one per class "
                            f"name. Received: label {int(outside[0])}")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int] | np.ndarray) -> TextDataset:
        """Select examples by index, keeping the class names.

        Args:
            indices: positions of the examples to keep, in the order wanted.

        Returns:
            A new ``TextDataset``.
        """
        indices = np.asarray(indices, dtype=np.int64)
        return TextDataset([self.texts[i] for i in indices.tolist()], self.labels[indices],
                           list(self.class_names))


def load_texts(
    path: str | os.PathLike[str],
    text_column: str = "text",
    label_column: str = "label",
    class_names: Sequence[str] | None = None,
) -> TextDataset:
    """Load labelled texts from a folder of class sub-folders, a .csv file or a .jsonl file.

    A folder is read as ``keras.utils.text_dataset_from_directory`` reads it: each sub-folder
    is a class, its ``.txt`` files (searched recursively, UTF-8) are the examples. A .csv file
    needs a header row; a .jsonl file holds one JSON object per line (blank lines are skipped).
    Labels may be strings or integers; surrounding spaces are stripped.

    Args:
        path: the folder or file.
        text_column: the .csv column / .jsonl key holding the text.
        label_column: the .csv column / .jsonl key holding the label.
        class_names: the classes to keep, in this order (label i = ``class_names[i]``); examples
            of other classes are left out, e.g. ``["neg", "pos"]`` skips ``aclImdb/train/unsup``.
            ``None`` keeps every class, sorted (numerically when every label is an integer).

    Returns:
        A ``TextDataset``. Any problem with the data raises ``DataError``.

    Example:
        >>> train = load_texts("aclImdb/train", class_names=["neg", "pos"])  # doctest: +SKIP
    """
    path = Path(path)
    wanted = _check_class_names(class_names)
    if not path.exists():
        raise DataError(f"The data path does not exist. Expected {ACCEPTED}. "
                        f"Received: path='{path}'")
    if path.is_dir():
        texts, labels, wheres = _read_folder(path, wanted)
    elif path.suffix.lower() == ".csv":
        texts, labels, wheres = _read_csv(path, text_column, label_column)
    elif path.suffix.lower() == ".jsonl":
        texts, labels, wheres = _read_jsonl(path, text_column, label_column)
    else:
        raise DataError(f"Unsupported data file extension '{path.suffix}'. Expected {ACCEPTED}. "
                        f"Received: path='{path}'")
    return _to_dataset(texts, labels, wheres, wanted, path)


def split_train_validation(
    dataset: TextDataset, validation_fraction: float = 0.2, seed: int = 0
) -> tuple[TextDataset, TextDataset]:
    """Split into training and validation sets, stratified by class and shuffled with a seed.

    Each class gives ``round(count * validation_fraction)`` examples to validation, but always
    keeps at least one for training; both sets are then shuffled.

    Args:
        dataset: the examples to split.
        validation_fraction: the share of each class held out, strictly between 0 and 1.
        seed: the seed of the shuffle; the same seed gives the same split in every process.

    Returns:
        ``(train, validation)``.
    """
    if isinstance(validation_fraction, bool) or not 0 < validation_fraction < 1:
        raise DataError("validation_fraction must lie strictly between 0 and 1. "
                        f"Received: validation_fraction={validation_fraction!r}")
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for label in range(len(dataset.class_names)):
        members = rng.permutation(np.flatnonzero(dataset.labels == label))
        held_out = min(math.floor(len(members) * validation_fraction + 0.5), len(members) - 1)
        validation.extend(members[: max(held_out, 0)])
        train.extend(members[max(held_out, 0):])
    if not validation:
        raise DataError(f"Too few examples to hold out a validation set with "
                        f"validation_fraction={validation_fraction}. Received: {len(dataset)} "
                        "examples")
    return dataset.subset(rng.permutation(train)), dataset.subset(rng.permutation(validation))


def _check_class_names(class_names: Sequence[str] | None) -> list[str] | None:
    if class_names is None:
        return None
    if isinstance(class_names, str) or not all(isinstance(name, str) and name.strip()
                                               for name in class_names):
        raise DataError("class_names must be a list of non-empty strings. "
                        f"Received: class_names={class_names!r}")
    names = [name.strip() for name in class_names]
    if len(names) < 2 or len(set(names)) != len(names):
        raise DataError("class_names must name at least two different classes. "
                        f"Received: class_names={class_names!r}")
    return names


def _read_text(path: Path) -> str:
    """Read a whole file as UTF-8 (a leading byte order mark is dropped)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"Cannot read the file ({error.strerror}). Received: path='{path}'"
                        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(f"The file is not valid UTF-8 text (line {line}, byte {error.start}); "
                        f"only UTF-8 is read. Received: path='{path}'") from None


def class_folders(path: Path, wanted: list[str] | None) -> list[tuple[str, list[Path]]]:
    """(class name, its .txt files, sorted) for each class sub-folder of `path` that is read:
    the `wanted` ones in their order, else all, sorted by name.

    Raises:
        DataError: fewer than two sub-folders, a wanted class without a sub-folder, or a class
            folder without .txt files.
    """
    folders = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise DataError(f"A data folder needs one sub-folder of .txt files per class, and at least "
                        f"two classes. Received: path='{path}' with sub-folders {folders}")
    missing = [name for name in wanted or [] if name not in folders]
    if missing:
        raise DataError(f"No sub-folder for the classes {missing} given in class_names; the "
                        f"sub-folders are {folders}. Received: path='{path}'")
    classes = []
    for name in wanted or folders:
        files = sorted(p for p in (path / name).rglob("*.txt") if p.is_file())
        if not files:
            raise DataError(f"The class folder '{name}' holds no .txt files; each class needs at "
                            f"least one. Received: path='{path / name}'")
        classes.append((name, files))
    return classes


# Each reader returns (texts, labels, where each text stands: "line N of 'path'" or
# "path='file'"), so that a text refused later is named where the user can find it.
Read = tuple[list[str], list[str], list[str]]


def _read_folder(path: Path, wanted: list[str] | None) -> Read:
    texts, labels, wheres = [], [], []
    for name, files in class_folders(path, wanted):
        texts.extend(_read_text(file) for file in files)
        labels.extend([name] * len(files))
        wheres.extend(f"path='{file}'" for file in files)
    return texts, labels, wheres


def _check_columns(found: Sequence[str], text_column: str, label_column: str, where: str) -> None:
    missing = [column for column in (text_column, label_column) if column not in found]
    if missing:
        raise DataError(f"Missing the column(s) {missing} (set text_column= / label_column= to "
                        f"the right names). Columns found: {list(found)}. Received: {where}")


def _read_csv(path: Path, text_column: str, label_column: str) -> Read:
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    try:
        _check_columns(reader.fieldnames or [], text_column, label_column, f"path='{path}'")
        rows = [(row[text_column], row[label_column], reader.line_num) for row in reader]
    except csv.Error as error:
        raise DataError(f"The CSV file is malformed at line {reader.line_num} ({error}). "
                        f"Received: path='{path}'") from None
    for text, label, line in rows:
        if text is None or label is None:
            raise DataError(f"Line {line} has fewer fields than the header. "
                            f"Received: path='{path}'")
    wheres = [f"line {line} of '{path}'" for _, _, line in rows]
    return ([text for text, _, _ in rows],
            [_label_name(label, where) for (_, label, _), where in zip(rows, wheres, strict=True)],
            wheres)


# A line ends at "\n" or "\r\n" and nowhere else. `str.splitlines` also breaks at U+2028,
# U+2029, U+0085, form feed, vertical tab, a lone "\r" and U+001C-U+001E, so one text holding
# one of them would become two records (and two predictions). Text-mode reading has the same
# flaw for a lone "\r" (universal newlines): callers read bytes, decode, then split here.
LINE_END = re.compile(r"\r?\n")


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, each ended by "\\n" or "\\r\\n" (the ending is removed).

    The project's one rule for records in text (.jsonl files, ``keras-attn predict --file``;
    CSV keeps the `csv` module's quoting rules, a folder holds one text per .txt file). Every
    other character, U+2028 and form feed included, stays inside its line. A last line
    without a newline is kept; a final newline does not start an empty line. Blank lines are
    kept, so ``index + 1`` is the line number an error message names.

    Args:
        text: the decoded text.

    Returns:
        The lines, a list of str (``[]`` for ``""``).

    Example:
        >>> split_lines("one\\u2028still one\\r\\ntwo\\n\\nfour")
        ['one\\u2028still one', 'two', '', 'four']
    """
    lines = LINE_END.split(text)
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line, or an empty text
    return lines


def jsonl_records(path: Path) -> Iterator[tuple[dict, str]]:
    """Each JSON object of a .jsonl file, with where it stands ("line N of 'path'").

    One record per "\n" / "\r\n" line (JSON strings may hold U+2028: see `split_lines`);
    blank lines are skipped.

    Raises:
        DataError: a line that is not valid JSON, or not a JSON object, naming the line.
    """
    yield from parse_jsonl_lines(split_lines(_read_text(path)), path)


def parse_jsonl_lines(lines: Iterable[str], path: Path) -> Iterator[tuple[dict, str]]:
    """`jsonl_records` over lines already split (`keras_attn.data.streaming` reads them one at a
    time); blank lines are skipped, and a line's number is its position in `lines`."""
    for number, line in enumerate(lines, start=1):
        where = f"line {number} of '{path}'"
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"Each line must be one JSON object; this one is not valid JSON "
                            f"({error.msg}). Received: {where}") from None
        if not isinstance(record, dict):
            raise DataError(f"Each line must be one JSON object. Received: "
                            f"{type(record).__name__} at {where}")
        yield record, where


def text_and_label(record: dict, text_column: str, label_column: str,
                   where: str) -> tuple[str, str]:
    """The text and the label name of one .jsonl record, checked."""
    _check_columns(list(record), text_column, label_column, where)
    if not isinstance(record[text_column], str):
        raise DataError(f"The text must be a string. Received: "
                        f"{type(record[text_column]).__name__} at {where}")
    return record[text_column], _label_name(record[label_column], where)


def _read_jsonl(path: Path, text_column: str, label_column: str) -> Read:
    texts, labels, wheres = [], [], []
    for record, where in jsonl_records(path):
        text, label = text_and_label(record, text_column, label_column, where)
        texts.append(text)
        labels.append(label)
        wheres.append(where)
    return texts, labels, wheres


def _label_name(label: object, where: str) -> str:
    if isinstance(label, bool) or not isinstance(label, (str, int)) or not str(label).strip():
        raise DataError(f"A label must be a non-empty string or an integer. "
                        f"Received: {label!r} at {where}")
    return str(label).strip()


def _to_dataset(texts: list[str], labels: list[str], wheres: list[str],
                wanted: list[str] | None, path: Path) -> TextDataset:
    found = sorted_class_names(set(labels))
    if wanted is not None:
        missing = [name for name in wanted if name not in found]
        if missing:
            raise DataError(f"No examples of the classes {missing} given in class_names; the "
                            f"labels found are {found}. Received: path='{path}'")
        keep = [index for index, label in enumerate(labels) if label in wanted]
        texts, labels, wheres = ([texts[i] for i in keep], [labels[i] for i in keep],
                                 [wheres[i] for i in keep])
    empty = texts_without_tokens(texts)
    if empty:
        raise DataError(f"{len(empty)} text(s) contain no words or symbols (empty, whitespace or "
                        f"invisible characters only); every text needs at least one token. "
                        f"Received: {texts[empty[0]]!r} at {wheres[empty[0]]}")
    class_names = wanted or found
    if len(class_names) < 2:
        raise DataError(f"A classifier needs examples of at least two classes. Received: "
                        f"{len(texts)} examples, classes {class_names}, path='{path}'")
    index = {name: position for position, name in enumerate(class_names)}
    return TextDataset(texts, np.array([index[label] for label in labels]), class_names)


def sorted_class_names(names: Iterable[str]) -> list[str]:
    """Label names in class order: sorted, numerically when every name is an integer."""
    found = sorted(names)
    if all(re.fullmatch(r"-?\d+", name) for name in found):
        found.sort(key=int)  # "2" before "10"
    return found


def encode_texts(tokenizer, texts: Sequence[str], max_len: int) -> np.ndarray:
    """Token ids `[n, <= max_len]`, the same for training and prediction.

    Raises:
        DataError: a text has no token at all (empty, or only invisible characters).
    """
    ids = tokenizer.encode_batch(list(texts), max_len)
    empty = np.flatnonzero(~ids.any(axis=1))  # id 0 is padding only: a row of 0 has no token
    if empty.size:
        raise DataError(
            f"{empty.size} text(s) contain no words or symbols after tokenization; every text "
            f"needs at least one token. Received: text #{empty[0]} = {texts[empty[0]]!r}"
        )
    return ids
