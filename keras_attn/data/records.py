"""The one reader of the user's data files: a record at a time, labelled or text only.

`iter_records(path, text_column, label_column, class_names)` yields ``(text, label, where)``
for every record of a data path, one at a time, in file order. It has two views:

- labelled (``label_column`` a column name): a folder with one sub-folder of .txt files per
  class (each file is one text, its label the sub-folder's name; the wanted classes in their
  order, else every class, sorted), a .csv file (header row) or a .jsonl file (one JSON object
  per line). ``label`` is the label name: a str, surrounding spaces stripped.
- text only (``label_column=None``): a folder of .txt files (searched recursively, one text per
  file, sorted by path), a .txt file (one text per line) or the text column of a .csv / .jsonl
  file. ``label`` is None: no label is read, so a bad label is no error here.

``where`` names where the record stands, ``"line N of 'path'"`` or ``"path='file'"``, so that a
text refused later (say, one without tokens) is named where the user can find it.

Files are read a line, a CSV row or (folders) a file at a time, never whole: a .jsonl or .txt
line ends at "\\n" or "\\r\\n" only (binary lines, as `split_lines` documents), a .csv file is
read by the `csv` module (its quoting rules, ``newline=""``, fields of any length), all as UTF-8
(a leading byte order mark is dropped). Blank .jsonl lines are skipped; blank .txt lines are
yielded (empty texts: the caller decides). Extensions match in any case; hidden files and
folders (a name starting with ".") are not read. Label, class folder, class_names and column
names are compared in Unicode NFC (`nfc`), so one name in two forms is one class or column.

Its views: `load_texts` (labelled, collected in memory into a `TextDataset`: what
`keras-attn train` reads), `keras_attn.data.streaming` (labelled, record by record: what
`keras-attn train --stream` reads) and `keras_attn.data.lm_windows.load_lm_texts` (text only:
what `keras-attn train-lm` reads). Each problem with the data raises `DataError` with one
message, the same from every view, naming the file (and its line): a missing path, an
unsupported extension (saying what the view accepts), a file that is not UTF-8 (line and
byte; a UTF-16 / UTF-32 file by the byte order mark it starts with, with its conversion),
missing column(s) (naming the ``text_column=`` / ``label_column=`` parameters, which
the CLI turns into its flags), a malformed CSV line, a CSV line with fewer fields than the
header (of the columns read), a .jsonl line that is not JSON or not a JSON object, a text that
is not a string, and a label that is neither a non-empty string nor an integer.

Plain Python and NumPy: files are read here, so a bad file gets an error that names it (and its
line), instead of an error from deep inside a TensorFlow input pipeline.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.artifact.tokenizer import surrogate_message, texts_without_tokens

ACCEPTED_LABELLED = ("a folder with one sub-folder of .txt files per class, a .csv file or a "
                     ".jsonl file")
ACCEPTED_TEXT = ("a folder of .txt files (one text per file), a .txt file (one text per line), "
                 "or a .csv / .jsonl file with a text column")
# The parameters that name the columns, as the missing-column message names them (the CLI
# maps them to its flags: keras_attn.cli.training_commands.FLAG_OF_DATA_PARAMETER).
COLUMN_PARAMETERS = ("text_column", "label_column")

# (text, label name or None in the text-only view, where it stands)
Record = tuple[str, "str | None", str]


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

    The labelled view of `iter_records`, collected. A folder is read as
    ``keras.utils.text_dataset_from_directory`` reads it: each sub-folder is a class, its
    ``.txt`` files (searched recursively, UTF-8) are the examples. A .csv file needs a header
    row; a .jsonl file holds one JSON object per line (blank lines are skipped). Labels may be
    strings or integers; surrounding spaces are stripped.

    Args:
        path: the folder or file.
        text_column: the .csv column / .jsonl key holding the text.
        label_column: the .csv column / .jsonl key holding the label.
        class_names: the classes to keep, in this order (label i = ``class_names[i]``); examples
            of other classes are left out, e.g. ``["neg", "pos"]`` skips ``aclImdb/train/unsup``.
            ``None`` keeps every class, sorted (numerically when every label is an integer).

    Returns:
        A ``TextDataset``. Any problem with the data raises ``DataError`` (the reader's errors:
        see the module docstring; also fewer than two classes, or a text without a token).

    Example:
        >>> train = load_texts("aclImdb/train", class_names=["neg", "pos"])  # doctest: +SKIP
    """
    wanted = _check_class_names(class_names)
    texts, labels, wheres = [], [], []
    for text, label, where in iter_records(path, text_column, label_column, wanted):
        texts.append(text)
        labels.append(label)
        wheres.append(where)
    return _to_dataset(texts, labels, wheres, wanted, Path(path))


def iter_records(path: str | os.PathLike[str], text_column: str = "text",
                 label_column: str | None = "label",
                 class_names: Sequence[str] | None = None) -> Iterator[Record]:
    """``(text, label, where)`` of every record of `path`, read one at a time, in file order.

    Args:
        path: the folder or file (each view's formats: see the module docstring).
        text_column: the .csv column / .jsonl key holding the text.
        label_column: the .csv column / .jsonl key holding the label; ``None`` reads the
            text-only view (``label`` is then None).
        class_names: labelled folders only: the class sub-folders read, in this order (the
            others are not read at all); ``None`` reads every one, sorted by name. A .csv /
            .jsonl file's records are all yielded, whatever their label: the caller keeps the
            classes it wants.

    Yields:
        ``(text, label, where)``: the text (str), the label name (str; None in the text-only
        view) and where the record stands (``"line N of 'path'"`` or ``"path='file'"``).

    Raises:
        DataError: see the module docstring; raised when the bad record is reached (the
            records before it have been yielded).
    """
    path = Path(path)
    wanted = _check_class_names(class_names)
    labelled = label_column is not None
    if wanted is not None and not labelled:
        raise DataError("class_names selects classes, and the text-only view "
                        f"(label_column=None) reads no label. Received: class_names={wanted!r}")
    accepted = ACCEPTED_LABELLED if labelled else ACCEPTED_TEXT
    if not path.exists():
        raise DataError(f"The data path does not exist. Expected {accepted}. "
                        f"Received: path='{path}'")
    columns = (text_column, label_column) if labelled else (text_column,)
    suffix = path.suffix.lower()
    if path.is_dir() and labelled:
        for name, files in class_folders(path, wanted):
            for file in files:
                yield _read_text(file), name, f"path='{file}'"
    elif path.is_dir():
        for file in text_files(path):
            yield _read_text(file), None, f"path='{file}'"
    elif suffix == ".csv":
        yield from _csv_records(path, columns)
    elif suffix == ".jsonl":
        yield from _jsonl_records(path, columns)
    elif suffix == ".txt" and not labelled:
        for line, where in _lines(path):
            yield line, None, where
    else:
        raise DataError(f"Unsupported data file extension '{path.suffix}'. Expected {accepted}. "
                        f"Received: path='{path}'")


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
    names = [nfc(name.strip()) for name in class_names]
    if len(names) < 2 or len(set(names)) != len(names):
        raise DataError("class_names must name at least two different classes. "
                        f"Received: class_names={class_names!r}")
    return names


def _cannot_read(path: Path, error: OSError) -> DataError:
    return DataError(f"Cannot read the file ({error.strerror}). Received: path='{path}'")


# The byte order marks of the other Unicode encodings, UTF-32 first (its little-endian mark
# begins with UTF-16's): Windows Notepad and Excel's "Unicode Text" save UTF-16 with one.
OTHER_BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "UTF-32LE"), (codecs.BOM_UTF32_BE, "UTF-32BE"),
                          (codecs.BOM_UTF16_LE, "UTF-16LE"), (codecs.BOM_UTF16_BE, "UTF-16BE"))


def _not_utf8(path: Path, line: int, byte: int, head: bytes) -> DataError:
    """The error for a file that is not UTF-8; `head` is its first bytes (at least 4, where
    the file has them), to name a UTF-16 or UTF-32 file by its byte order mark."""
    for mark, encoding in OTHER_BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return DataError(f"The file is {encoding} text (it starts with that byte order "
                             f"mark); only UTF-8 is read. Convert it, e.g. `iconv -f "
                             f"{encoding.removesuffix('LE').removesuffix('BE')} -t UTF-8 "
                             f"'{path}' > converted{path.suffix}`. Received: path='{path}'")
    return DataError(f"The file is not valid UTF-8 text (line {line}, byte {byte}); only UTF-8 "
                     f"is read. Received: path='{path}'")


def _read_text(path: Path) -> str:
    """A whole file (one text of a folder) as UTF-8; a leading byte order mark is dropped."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise _cannot_read(path, error) from None
    return decode_utf8(data, path)


def decode_utf8(data: bytes, path: str | os.PathLike[str]) -> str:
    """The bytes of the file at `path` as UTF-8 text; a leading UTF-8 byte order mark is dropped.

    Raises:
        DataError: the bytes are not UTF-8, naming the line and byte, or the UTF-16 / UTF-32
            encoding that a leading byte order mark shows, with the `iconv` command that
            converts the file.
    """
    path = Path(path)
    body = data.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = len(data) - len(body) + error.start
        raise _not_utf8(path, data.count(b"\n", 0, byte) + 1, byte, data[:4]) from None


def _lines(path: Path) -> Iterator[tuple[str, str]]:
    """(line, "line N of 'path'") of a UTF-8 file, one at a time. A line ends at "\\n" or
    "\\r\\n" only, as in `split_lines` (a file object in binary mode splits at b"\\n" alone);
    the ending is removed, and a leading byte order mark is dropped."""
    try:
        file = open(path, "rb")  # noqa: SIM115 (closed by the `with` below)
    except OSError as error:
        raise _cannot_read(path, error) from None
    with file:
        offset = 0  # of `raw` in the file, for the byte an error names
        head = file.peek(4)[:4]  # a BufferedReader's peek does not move the position
        for number, raw in enumerate(file, start=1):
            body = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
            try:
                line = body.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _not_utf8(path, number, offset + len(raw) - len(body) + error.start,
                                head) from None
            offset += len(raw)
            yield (line[:-2] if line.endswith("\r\n") else line.removesuffix("\n"),
                   f"line {number} of '{path}'")


def text_files(folder: Path) -> list[Path]:
    """The .txt files below `folder` (recursively), sorted by path.

    The extension is matched in any case (`.txt`, `.TXT`, `.Txt`), as
    `keras.utils.text_dataset_from_directory` matches it: a case-sensitive glob skipped `*.TXT`
    files and trained on the rest without a word. Hidden files and folders (a name starting
    with ".") are not read: macOS's ``._name.txt`` resource forks are not text, and Jupyter's
    ``.ipynb_checkpoints/name-checkpoint.txt`` copies would put each text in twice (and across
    the training / validation split).
    """
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() == ".txt" and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def class_folders(path: Path, wanted: list[str] | None) -> list[tuple[str, list[Path]]]:
    """(class name, its .txt files, sorted) for each class sub-folder of `path` that is read:
    the `wanted` ones in their order, else all, sorted by name.

    Raises:
        DataError: fewer than two sub-folders, a wanted class without a sub-folder, or a class
            folder without .txt files.
    """
    by_name: dict[str, list[Path]] = {}  # class name (NFC) -> its folders
    for folder in sorted(path.iterdir()):
        if folder.is_dir() and not folder.name.startswith("."):
            by_name.setdefault(nfc(folder.name), []).append(folder)
    folders = sorted(by_name)
    if len(folders) < 2:
        raise DataError(f"A data folder needs one sub-folder of .txt files per class, and at least "
                        f"two classes. Received: path='{path}' with sub-folders {folders}")
    missing = [name for name in wanted or [] if name not in by_name]
    if missing:
        raise DataError(f"No sub-folder for the classes {missing} given in class_names; the "
                        f"sub-folders are {folders}. Received: path='{path}'")
    classes = []
    for name in wanted or folders:
        files = sorted(file for folder in by_name[name] for file in text_files(folder))
        if not files:
            raise DataError(f"The class folder '{name}' holds no .txt files; each class needs at "
                            f"least one. Received: path='{by_name[name][0]}'")
        classes.append((name, files))
    return classes


def nfc(name: str) -> str:
    """A class or column name in Unicode normalization form C (composed), the one form names
    are compared in. "café" can be spelled with U+00E9 or with "e" + U+0301: macOS file systems
    store folder names decomposed (NFD) and most editors write CSV labels composed (NFC), so
    without this one class became two, and a ``--classes`` name matched no folder."""
    return unicodedata.normalize("NFC", name)


# A line ends at "\n" or "\r\n" and nowhere else. `str.splitlines` also breaks at U+2028,
# U+2029, U+0085, form feed, vertical tab, a lone "\r" and U+001C-U+001E, so one text holding
# one of them would become two records (and two predictions). Text-mode reading has the same
# flaw for a lone "\r" (universal newlines): text already in memory is split here, and files
# are read as binary lines (`_lines`), which end at b"\n" alone: the same rule.
LINE_END = re.compile(r"\r?\n")


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, each ended by "\\n" or "\\r\\n" (the ending is removed).

    The project's one rule for records in text (.jsonl and .txt files, which `iter_records`
    reads line by line by the same rule; ``keras-attn predict --file``; CSV keeps the `csv`
    module's quoting rules, a folder holds one text per .txt file). Every other character,
    U+2028 and form feed included, stays inside its line. A last line without a newline is
    kept; a final newline does not start an empty line. Blank lines are kept, so
    ``index + 1`` is the line number an error message names.

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


def _column_keys(found: Sequence[str], columns: Sequence[str], where: str) -> list[str]:
    """The header names / keys in `found` that hold `columns`: the same string, else the one
    that is the same in NFC (a header written decomposed still matches ``text_column=``)."""
    if all(column in found for column in columns):
        return list(columns)
    by_nfc = {nfc(name): name for name in found}
    keys = [column if column in found else by_nfc.get(nfc(column)) for column in columns]
    missing = [column for column, key in zip(columns, keys, strict=True) if key is None]
    if missing:
        parameters = " / ".join(f"{name}=" for name in COLUMN_PARAMETERS[:len(columns)])
        raise DataError(f"Missing the column(s) {missing} (set {parameters} to the right "
                        f"names). Columns found: {list(found)}. Received: {where}")
    return keys


def _record(values: Sequence[object], where: str) -> Record:
    """(text, label name or None, where) from the values of the columns read (text first)."""
    text = values[0]
    if not isinstance(text, str):
        raise DataError(f"The text must be a string. Received: {type(text).__name__} at {where}")
    surrogate = surrogate_message(text, where)  # only a .jsonl escape can make one
    if surrogate is not None:
        raise DataError(surrogate)
    return text, _label_name(values[1], where) if len(values) > 1 else None, where


# The `csv` module refuses a field over 131,072 characters ("field larger than field limit")
# by default, so one long review or article made a well-formed file "malformed". The limit is
# raised (never lowered) to what a C long holds on every platform: a CSV file's fields are
# bounded by its size, as a .jsonl line or a .txt file is.
CSV_FIELD_SIZE_LIMIT = 2**31 - 1


def _csv_records(path: Path, columns: Sequence[str]) -> Iterator[Record]:
    try:
        file = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed below)
    except OSError as error:
        raise _cannot_read(path, error) from None
    with file:
        csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_SIZE_LIMIT))
        reader = csv.DictReader(file)
        try:
            keys = _column_keys(reader.fieldnames or [], columns, f"path='{path}'")
            for row in reader:
                values = [row[key] for key in keys]
                if None in values:
                    raise DataError(f"Line {reader.line_num} has fewer fields than the header. "
                                    f"Received: path='{path}'")
                yield _record(values, f"line {reader.line_num} of '{path}'")
        except csv.Error as error:
            raise DataError(f"The CSV file is malformed at line {reader.line_num} ({error}). "
                            f"Received: path='{path}'") from None
        except UnicodeDecodeError:
            # The text layer decodes a chunk at a time, so its error knows neither the line nor
            # the byte: reading the file's lines again raises the error that names them.
            for _ in _lines(path):
                pass
            raise


def _jsonl_records(path: Path, columns: Sequence[str]) -> Iterator[Record]:
    for line, where in _lines(path):
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
        keys = _column_keys(list(record), columns, where)
        yield _record([record[key] for key in keys], where)


def _label_name(label: object, where: str) -> str:
    if isinstance(label, bool) or not isinstance(label, (str, int)) or not str(label).strip():
        raise DataError(f"A label must be a non-empty string or an integer. "
                        f"Received: {label!r} at {where}")
    return nfc(str(label).strip())


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
    _check_every_text_has_a_token(texts, wheres)
    class_names = wanted or found
    if len(class_names) < 2:
        raise DataError(f"A classifier needs examples of at least two classes. Received: "
                        f"{len(texts)} examples, classes {class_names}, path='{path}'")
    index = {name: position for position, name in enumerate(class_names)}
    return TextDataset(texts, np.array([index[label] for label in labels]), class_names)


def load_texts_for_classes(
    path: str | os.PathLike[str],
    class_names: Sequence[str],
    text_column: str = "text",
    label_column: str = "label",
) -> TextDataset:
    """Load labelled texts to score a model trained on `class_names`: a test or validation set.

    Reads what `load_texts` reads. Unlike `load_texts`, nothing is left out: a label that is
    not one of `class_names` is an error, since a classifier cannot be right about a class it
    does not know, and dropping those texts would report a better score than the data gives.
    A class with no example is allowed (its support is 0).

    Args:
        path: the folder, .csv or .jsonl file.
        class_names: the model's classes, in its order (label i = ``class_names[i]``).
        text_column, label_column: as for `load_texts`.

    Returns:
        A ``TextDataset`` whose ``class_names`` are `class_names`.

    Raises:
        DataError: the reader's errors (see `load_texts`), no text at all, a text without a
            token, or a label outside `class_names` (naming it and where it stands).
    """
    wanted = _check_class_names(class_names)
    index = {name: position for position, name in enumerate(wanted)}
    texts, labels, wheres = [], [], []
    for text, label, where in iter_records(path, text_column, label_column, None):
        if label not in index:
            raise DataError(f"The label {label!r} at {where} is not one of the model's classes; "
                            f"expected one of {wanted}. Received: path='{path}'")
        texts.append(text)
        labels.append(index[label])
        wheres.append(where)
    if not texts:
        raise DataError(f"Expected at least one labelled text. Received: none in path='{path}'")
    _check_every_text_has_a_token(texts, wheres)
    return TextDataset(texts, np.array(labels), wanted)


def fingerprint(*datasets: TextDataset) -> str:
    """sha256 (hex) of the datasets' texts and labels, in order: a rerun resumes only on exactly
    the same data, and `keras-attn evaluate` refits a baseline only on the run's own split."""
    digest = hashlib.sha256()
    for dataset in datasets:
        for text in dataset.texts:
            digest.update(text.encode("utf-8") + b"\0")
        digest.update(dataset.labels.astype("int64").tobytes())
    return digest.hexdigest()


def shared_texts(texts: Sequence[str], others: Sequence[str]) -> int:
    """How many of `texts` are also in `others` (the same string): what a validation or test
    set should share with its training split, none."""
    seen = set(others)
    return sum(text in seen for text in texts)


def _check_every_text_has_a_token(texts: list[str], wheres: list[str]) -> None:
    empty = texts_without_tokens(texts)
    if empty:
        raise DataError(f"{len(empty)} text(s) contain no words or symbols (empty, whitespace or "
                        f"invisible characters only); every text needs at least one token. "
                        f"Received: {texts[empty[0]]!r} at {wheres[empty[0]]}")


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
