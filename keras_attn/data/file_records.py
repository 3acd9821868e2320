"""A data path's labelled records read one at a time: what `keras-attn train --stream` reads.

The formats, checks and messages of `keras_attn.data.records.load_texts` (a .jsonl or .csv file, or
a
folder of class sub-folders of .txt files), without holding the file's texts: a line, a CSV
row or a file at a time.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from keras_attn.data.records import (
    ACCEPTED,
    DataError,
    _check_columns,
    _label_name,
    _read_text,
    class_folders,
    parse_jsonl_lines,
    text_and_label,
)


def iter_records(path: Path, text_column: str = "text", label_column: str = "label",
                 class_names: list[str] | None = None) -> Iterator[tuple[str, str, str]]:
    """(text, label name, where) of every record, read one at a time; see `load_texts`.
    A folder's sub-folders outside `class_names` (when given) are not read.

    Raises:
        DataError: as `load_texts` (a missing path, an unknown extension, a bad line, ...).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"The data path does not exist. Expected {ACCEPTED}. "
                        f"Received: path='{path}'")
    if path.is_dir():
        yield from _folder_records(path, class_names)
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


def _folder_records(path: Path, wanted: list[str] | None) -> Iterator[tuple[str, str, str]]:
    for name, files in class_folders(path, wanted):
        for file in files:
            yield _read_text(file), name, f"'{file}'"
