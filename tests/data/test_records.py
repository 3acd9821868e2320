"""Tests for keras_attn/data/records.py: folders, CSV, JSONL, the errors a user sees, the split,
and the one reader's two views (labelled, text only) agreeing."""

import ast
import codecs
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keras_attn.data import records as data
from keras_attn.data.lm_windows import load_lm_texts
from keras_attn.data.records import (
    DataError,
    TextDataset,
    iter_records,
    load_texts,
    split_train_validation,
)
from keras_attn.data.streaming import scan_stream


def write_folder(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create files under root from {"class/name.txt": content}."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    return path


# --- folders ----------------------------------------------------------------------------------


def test_folder_gives_one_class_per_sorted_subfolder(tmp_path):
    root = write_folder(tmp_path / "d", {
        "pos/1.txt": "Great film!", "pos/2.txt": "\ufeffLoved it, café.",
        "neg/a.txt": "Dull.", "neg/deeper/b.txt": "Boring 😴", "neg/notes.md": "ignored",
    })
    dataset = load_texts(root)
    assert dataset.class_names == ["neg", "pos"]
    assert dataset.texts == ["Dull.", "Boring 😴", "Great film!", "Loved it, café."]
    assert dataset.labels.tolist() == [0, 0, 1, 1]
    assert dataset.labels.dtype == np.int32
    assert len(dataset) == 4


def test_imdb_layout_with_unsup_folder_and_class_names(tmp_path):
    root = write_folder(tmp_path / "aclImdb" / "train", {
        "neg/0_3.txt": "bad<br /><br />movie", "pos/0_9.txt": "good movie",
        "unsup/0_0.txt": "no label", "urls_neg.txt": "http://...",
    })
    dataset = load_texts(str(root), class_names=["neg", "pos"])
    assert dataset.class_names == ["neg", "pos"]
    assert dataset.texts == ["bad<br /><br />movie", "good movie"]
    reversed_order = load_texts(root, class_names=["pos", "neg"])
    assert reversed_order.labels.tolist() == [0, 1]
    assert reversed_order.texts == ["good movie", "bad<br /><br />movie"]
    assert load_texts(root).class_names == ["neg", "pos", "unsup"]  # as keras would read it


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, r"at least two classes.*sub-folders \[\]"),
        ({"only/a.txt": "x"}, r"sub-folders \['only'\]"),
        ({"loose.txt": "x"}, "one sub-folder of .txt files per class"),
        ({"a/1.txt": "x", "b/1.csv": "x"}, "class folder 'b' holds no .txt files"),
        ({"a/1.txt": "x", "b/bad.txt": b"ok\nnot \xff utf-8"}, r"not valid UTF-8 text \(line 2"),
    ],
)
def test_folder_errors_are_clear(tmp_path, files, message):
    root = write_folder(tmp_path / "d", files)
    root.mkdir(exist_ok=True)
    with pytest.raises(DataError, match=message) as error:
        load_texts(root)
    assert "Received:" in str(error.value)
    assert str(root) in str(error.value)


def test_non_utf8_file_is_named(tmp_path):
    latin1 = "café".encode("latin-1")
    root = write_folder(tmp_path / "d", {"a/1.txt": "x", "b/latin1.txt": latin1})
    with pytest.raises(DataError, match="latin1.txt"):
        load_texts(root)


def test_class_names_must_exist_as_folders(tmp_path):
    root = write_folder(tmp_path / "d", {"neg/1.txt": "x", "pos/1.txt": "y"})
    with pytest.raises(DataError, match=r"\['neutral'\].*\['neg', 'pos'\]"):
        load_texts(root, class_names=["neg", "neutral"])


@pytest.mark.parametrize("class_names", ["pos", ["pos"], ["pos", "pos"], ["pos", ""], ["a", 1]])
def test_class_names_argument_is_validated(tmp_path, class_names):
    with pytest.raises(DataError, match="Received: class_names="):
        load_texts(tmp_path, class_names=class_names)


def test_missing_path_and_unsupported_extension(tmp_path):
    with pytest.raises(DataError, match="does not exist.*missing"):
        load_texts(tmp_path / "missing")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"extension '\.xlsx'.*\.csv.*\.jsonl.*data\.xlsx"):
        load_texts(tmp_path / "data.xlsx")


# --- CSV --------------------------------------------------------------------------------------


def test_csv_with_string_labels_quotes_and_bom(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('\ufefftext,label\n"Good, really\ngood.",pos\nMeh,neg\n\n"Fine ""ok""", pos \n',
                    encoding="utf-8")
    dataset = load_texts(path)
    assert dataset.texts == ["Good, really\ngood.", "Meh", 'Fine "ok"']
    assert dataset.class_names == ["neg", "pos"]
    assert dataset.labels.tolist() == [1, 0, 1]


def test_csv_integer_labels_sort_numerically_and_columns_are_configurable(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,review,stars\n1,a,10\n2,b,2\n3,c,10\n", encoding="utf-8")
    dataset = load_texts(path, text_column="review", label_column="stars")
    assert dataset.class_names == ["2", "10"]
    assert dataset.labels.tolist() == [1, 0, 1]


def test_csv_class_names_select_and_order(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,x\nb,y\nc,z\n", encoding="utf-8")
    dataset = load_texts(path, class_names=["z", "x"])
    assert (dataset.texts, dataset.labels.tolist()) == (["a", "c"], [1, 0])
    with pytest.raises(DataError, match=r"\['w'\].*labels found are \['x', 'y', 'z'\]"):
        load_texts(path, class_names=["x", "w"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"body,label\na,x\nb,y\n", r"\['text'\].*Columns found: \['body', 'label'\]"),
        (b"", r"\['text', 'label'\].*Columns found: \[\]"),
        (b"text,label\na,x\nb\n", "Line 3 has fewer fields"),
        (b"text,label\na,x\nb,\n", "non-empty string.*line 3"),
        (b"text,label\na,x\nb,x\n", r"at least two classes.*\['x'\]"),
        (b"text,label\na,x\nb,\xe9\n", r"not valid UTF-8 text \(line 3"),
    ],
)
def test_csv_errors_are_clear(tmp_path, content, message):
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as error:
        load_texts(path)
    assert "d.csv" in str(error.value)


# --- JSONL ------------------------------------------------------------------------------------


def test_jsonl_with_integer_labels_blank_lines_and_unicode(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"text": "我爱你 👍", "label": 1}, {"text": "line\u2028separator", "label": 0},
        {"text": "x", "label": 1, "extra": True},
    ])
    path.write_text(path.read_text(encoding="utf-8") + "\n\n   \n", encoding="utf-8")
    dataset = load_texts(path)
    assert dataset.class_names == ["0", "1"]
    assert dataset.texts == ["我爱你 👍", "line\u2028separator", "x"]
    assert dataset.labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"text": "a", "label": "x"}', "{oops"], "not valid JSON.*line 2"),
        (['{"text": "a", "label": "x"}', "[1, 2]"], "JSON object. Received: list at line 2"),
        (['{"body": "a", "label": "x"}'], r"\['text'\].*found: \['body', 'label'\].*line 1"),
        (['{"text": 3, "label": "x"}'], "text must be a string. Received: int at line 1"),
        (['{"text": "a", "label": true}'], "Received: True at line 1"),
        (['{"text": "a", "label": 1.5}'], "Received: 1.5 at line 1"),
        (['{"text": "a", "label": "x"}', '{"text": "\xe9", "label": "y"}'], "UTF-8 text.*line 2"),
        # Issue 19 case 8: JSON may escape half a surrogate pair; it became a traceback.
        (['{"text": "a", "label": "x"}', '{"text": "ok \\ud83d", "label": "y"}'],
         r"valid Unicode; line 2 of .* lone UTF-16 surrogate U\+D83D at character 3"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, lines, message):
    path = tmp_path / "d.jsonl"
    content = "\n".join(lines).encode("utf-8")
    path.write_bytes(content.replace("é".encode(), b"\xe9"))
    with pytest.raises(DataError, match=message) as error:
        load_texts(path)
    assert "d.jsonl" in str(error.value)


# --- records: one per "\n" / "\r\n" line -----------------------------------------------------

# Characters that str.splitlines breaks at but that never end a record here.
NOT_LINE_ENDS = ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e"]


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", []),
        ("one", ["one"]),
        ("one\n", ["one"]),
        ("one\r\ntwo\r\n", ["one", "two"]),
        ("one\ntwo", ["one", "two"]),  # a last line without a newline
        ("one\n\n \ntwo\n", ["one", "", " ", "two"]),  # blank lines are kept, in place
        ("\n\n", ["", ""]),
        ("lone\rreturn\n", ["lone\rreturn"]),  # "\r" ends a line only before "\n"
        ("ends in\r", ["ends in\r"]),
        *[(f"a{c}b\nc{c}\r\n", [f"a{c}b", f"c{c}"]) for c in NOT_LINE_ENDS],
    ],
)
def test_split_lines_ends_records_at_newline_only(text, lines):
    assert data.split_lines(text) == lines


@given(st.lists(st.text(st.characters(blacklist_characters="\n")), min_size=1),
       st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_split_lines_gives_back_the_lines_joined(lines, ending, final_newline):
    # Two joins are ambiguous by nature: "a\r" + "\n" reads as "a" + "\r\n", and an empty last
    # line without a newline is no line at all. Keep lines out of those two cases.
    lines = [line + "x" if line.endswith("\r") else line for line in lines]
    if not final_newline and lines[-1] == "":
        lines[-1] = "x"
    text = ending.join(lines) + (ending if final_newline else "")
    assert data.split_lines(text) == lines


def test_jsonl_keeps_every_line_separator_inside_its_record(tmp_path):
    texts = [f"half{c}half" for c in ("\u2028", "\u2029", "\x85")]
    content = "\r\n".join(json.dumps({"text": t, "label": i % 2}, ensure_ascii=False)
                           for i, t in enumerate(texts))  # CRLF endings, no final newline
    (tmp_path / "d.jsonl").write_bytes(content.encode("utf-8"))
    dataset = load_texts(tmp_path / "d.jsonl")
    assert dataset.texts == texts and dataset.labels.tolist() == [0, 1, 0]


def test_csv_keeps_line_separators_inside_unquoted_fields(tmp_path):
    rows = [f"half{c}half,{i % 2}" for i, c in enumerate(NOT_LINE_ENDS)]
    (tmp_path / "d.csv").write_bytes(("text,label\r\n" + "\r\n".join(rows)).encode("utf-8"))
    dataset = load_texts(tmp_path / "d.csv")
    assert dataset.texts == [f"half{c}half" for c in NOT_LINE_ENDS]
    assert dataset.labels.tolist() == [i % 2 for i in range(len(NOT_LINE_ENDS))]


# --- one reader, two views: labelled and text only ------------------------------------------


def _views(path):
    """What each view makes of `path`: the texts, or the message of the error it raised.
    Labelled: load_texts (in memory) and iter_records (streamed); text only: iter_records with
    label_column=None and load_lm_texts."""
    readers = (lambda: load_texts(path).texts,
               lambda: [text for text, _, _ in iter_records(path)],
               lambda: [text for text, _, _ in iter_records(path, label_column=None)],
               lambda: load_lm_texts(path))
    return _results_or_messages(readers)


def _results_or_messages(readers):
    """What each reader returns, or the message of the DataError it raised."""
    results = []
    for read in readers:
        try:
            results.append(read())
        except DataError as error:
            results.append(str(error))
    return results


def test_labelled_and_text_only_views_give_the_same_texts_and_the_same_errors(tmp_path):
    good = ['{"text": "one\u2028still one", "label": "x"}', '', '{"text": "two", "label": "y"}']
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_bytes("\r\n".join(good).encode())
    csv_file = tmp_path / "d.csv"
    csv_file.write_bytes(b'text,label\r\n"one\xe2\x80\xa8still one",x\r\ntwo,y\r\n')
    for path in (jsonl, csv_file):
        assert _views(path) == [["one\u2028still one", "two"]] * 4

    jsonl.write_text("\n".join([good[0], "{oops", good[2]]), encoding="utf-8")
    csv_file.write_bytes(b"text,label\na,x\n\xe9,y\nb,y\n")  # not UTF-8 in the text of line 3
    for path, message in ((jsonl, r"^Each line must be one JSON object; this one is not valid "
                                  r"JSON \(.*\)\. Received: line 2 of '.*d\.jsonl'$"),
                          (csv_file, r"^The file is not valid UTF-8 text \(line 3, byte 15\); "
                                     r"only UTF-8 is read\. Received: path='.*d\.csv'$")):
        messages = _views(path)
        assert all(isinstance(each, str) for each in messages), messages
        assert len(set(messages)) == 1, messages
        assert re.match(message, messages[0]), messages[0]


def test_a_txt_file_is_read_line_by_line_as_split_lines_splits_it(tmp_path):
    text = "".join(f"a{c}b\r\n\n c{c}\n" for c in NOT_LINE_ENDS) + "lone\rreturn\r\nlast\r"
    path = tmp_path / "texts.txt"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # with a byte order mark
    assert [line for line, _, _ in iter_records(path, label_column=None)] == \
        data.split_lines(text)
    assert load_lm_texts(path) == [line for line in data.split_lines(text) if line.strip()]
    with pytest.raises(DataError, match=r"extension '\.txt'.*one sub-folder.*texts\.txt"):
        load_texts(path)  # a .txt file holds no labels


def test_a_missing_column_names_the_parameters_each_view_reads(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("body,label\na,x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"\['text'\] \(set text_column= / label_column= to"):
        load_texts(path)
    with pytest.raises(DataError, match=r"\['text'\] \(set text_column= to"):
        load_lm_texts(path)
    assert load_lm_texts(path, text_column="body") == ["a"]  # the label is not read


# --- TextDataset and the split ----------------------------------------------------------------


def test_text_dataset_validates_labels():
    with pytest.raises(DataError, match="one label per text"):
        TextDataset(["a"], np.array([0, 1]), ["x", "y"])
    with pytest.raises(DataError, match="Received: label 2"):
        TextDataset(["a"], np.array([2]), ["x", "y"])


def make_dataset(counts: list[int]) -> TextDataset:
    labels = np.repeat(np.arange(len(counts)), counts)
    return TextDataset([f"text {i}" for i in range(len(labels))], labels,
                       [f"class {c}" for c in range(len(counts))])


def test_split_is_stratified_and_deterministic():
    dataset = make_dataset([50, 30])
    train, validation = split_train_validation(dataset, 0.2, seed=3)
    assert np.bincount(validation.labels).tolist() == [10, 6]
    assert np.bincount(train.labels).tolist() == [40, 24]
    again = split_train_validation(dataset, 0.2, seed=3)
    assert again[0].texts == train.texts and again[1].texts == validation.texts
    assert split_train_validation(dataset, 0.2, seed=4)[1].texts != validation.texts
    assert train.class_names == validation.class_names == dataset.class_names
    assert validation.labels.tolist() != sorted(validation.labels.tolist())  # shuffled


@given(st.lists(st.integers(min_value=1, max_value=30), min_size=2, max_size=4),
       st.floats(min_value=0.05, max_value=0.95), st.integers(min_value=0, max_value=2**32))
def test_split_partitions_and_keeps_every_class_in_training(counts, fraction, seed):
    dataset = make_dataset(counts)
    try:
        train, validation = split_train_validation(dataset, fraction, seed)
    except DataError as error:
        assert "Too few examples" in str(error)
        return
    assert sorted(train.texts + validation.texts) == sorted(dataset.texts)
    assert set(train.labels.tolist()) == set(range(len(counts)))
    for text, label in zip(train.texts + validation.texts,
                           [*train.labels, *validation.labels], strict=True):
        assert dataset.labels[dataset.texts.index(text)] == label


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, True])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(DataError, match="Received: validation_fraction="):
        split_train_validation(make_dataset([5, 5]), fraction)


def test_split_of_too_small_dataset_is_an_error():
    with pytest.raises(DataError, match="Too few examples.*2 examples"):
        split_train_validation(make_dataset([1, 1]), 0.2)


def test_data_module_imports_only_stdlib_and_numpy():
    tree = ast.parse(Path(data.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"keras", "tensorflow", "keras_attn"}


def test_a_text_without_tokens_is_refused_naming_where_it_stands(tmp_path):
    """Named by its line or file, before any split shuffles it (train named it "text #19")."""
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "fine", "label": "a"}\n\n{"text": "\\u200b ", "label": "b"}\n'
                     '{"text": "", "label": "c"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"^2 text\(s\) contain no words.*'\\u200b ' at line 3 "):
        load_texts(jsonl)
    with pytest.raises(DataError, match=r"^1 text\(s\).*'' at line 4 "):
        load_texts(jsonl, class_names=["a", "c"])  # a class left out is not checked
    folder = tmp_path / "folder"
    for name, text in (("x", "one"), ("y", "\t \n")):
        (folder / name).mkdir(parents=True)
        (folder / name / "1.txt").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=r"at path='.*y.1\.txt'"):
        load_texts(folder)


def test_txt_files_are_found_in_any_case_on_every_reader(tmp_path):
    """Issue 19 case 2 (keras #2932): `*.TXT` and `*.Txt` files were skipped by a case-sensitive
    glob, and training went on without them. Every folder reader finds them, as
    `keras.utils.text_dataset_from_directory` does (its extension match is case-insensitive)."""
    names = {"neg": ["a.txt", "B.TXT", "deep/c.Txt"], "pos": ["D.TXT", "e.txt"]}
    for label, files in names.items():
        for name in files:
            (tmp_path / label / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / label / name).write_text(f"{label} {name}", encoding="utf-8")
    (tmp_path / "neg" / "notes.md").write_text("not a text", encoding="utf-8")
    expected = sorted(f"{label} {name}" for label, files in names.items() for name in files)
    assert sorted(load_texts(tmp_path).texts) == expected  # in memory
    assert sorted(text for text, _, _ in iter_records(tmp_path)) == expected  # streamed
    assert scan_stream(tmp_path).counts.sum(axis=0).tolist() == [3, 2]
    assert sorted(load_lm_texts(tmp_path / "neg")) == expected[:3]  # text only (train-lm)


def test_a_lone_surrogate_is_refused_by_the_text_only_reader_too(tmp_path):
    path = tmp_path / "lm.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "\\udc00 alone"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2 of .* lone UTF-16 surrogate U\+DC00"):
        load_lm_texts(path)


# --- siblings of cases 2 and 8 on every reader: encodings, long fields, hidden files, names in
# two Unicode forms (issue 19, "the data files") -------------------------------------------------


def _folder_views(path, **kwargs):
    """The class names and texts each labelled folder reader makes of `path` (in memory,
    streamed record by record, and the streaming scan), or the message of its error."""
    def streamed():
        scan = scan_stream(path, validation_fraction=0.5, **kwargs)
        return scan.class_names, sorted(t for split in ("train", "validation")
                                        for t, _, _ in scan.records(split))
    readers = (lambda: (load_texts(path, **kwargs).class_names,
                        sorted(load_texts(path, **kwargs).texts)),
               lambda: (sorted({label for _, label, _ in iter_records(path, **kwargs)}),
                        sorted(text for text, _, _ in iter_records(path, **kwargs))),
               streamed)
    return _results_or_messages(readers)


UTF_ENCODINGS = [("UTF-16LE", codecs.BOM_UTF16_LE, "utf-16-le"),
                 ("UTF-16BE", codecs.BOM_UTF16_BE, "utf-16-be"),
                 ("UTF-32LE", codecs.BOM_UTF32_LE, "utf-32-le"),
                 ("UTF-32BE", codecs.BOM_UTF32_BE, "utf-32-be")]


@pytest.mark.parametrize(("name", "mark", "codec"), UTF_ENCODINGS)
def test_a_utf16_or_utf32_file_is_named_with_its_conversion_on_every_reader(tmp_path, name, mark,
                                                                           codec):
    """Notepad and Excel's "Unicode Text" save UTF-16 with a byte order mark: the message said
    "not valid UTF-8 (line 1, byte 0)", which does not say what the file is or what to do."""
    family = name[:-2]  # iconv's name: the mark gives the byte order
    message = (rf"^The file is {name} text \(it starts with that byte order mark\); only UTF-8 "
               rf"is read\. Convert it, e\.g\. `iconv -f {family} -t UTF-8 '.*d\.(csv|jsonl)' > "
               rf"converted\.(csv|jsonl)`\. Received: path='.*d\.(csv|jsonl)'$")
    for file, content in (("d.csv", "text,label\ncafé,x\nthé,y\n"),
                          ("d.jsonl", '{"text": "café", "label": "x"}\n')):
        (tmp_path / file).write_bytes(mark + content.encode(codec))
        messages = _views(tmp_path / file)
        assert len(set(messages)) == 1 and re.match(message, messages[0]), messages
    folder = write_folder(tmp_path / "folder", {"x/1.txt": "one", "y/2.txt": "two"})
    (folder / "y" / "3.txt").write_bytes(mark + "trois".encode(codec))
    for result in (*_folder_views(folder), _views(folder / "y")[2:]):
        assert re.search(rf"is {name} text .*Received: path='.*3\.txt'", str(result)), result
    (tmp_path / "lines.txt").write_bytes(mark + "one\ntwo\n".encode(codec))
    with pytest.raises(DataError, match=rf"^The file is {name} text"):
        load_lm_texts(tmp_path / "lines.txt")


def test_a_csv_field_longer_than_the_csv_module_limit_is_read_on_every_reader(tmp_path):
    """The csv module refuses fields over 131,072 characters by default: a CSV of long articles
    was "malformed at line 2 (field larger than field limit (131072))"."""
    long_text = "word " * 40_000  # 200,000 characters
    path = tmp_path / "long.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows([["text", "label"], [long_text, "x"], ["two", "y"],
                                    ["three", "x"], ["four", "y"]])
    assert _views(path) == [[long_text, "two", "three", "four"]] * 4
    assert scan_stream(path, validation_fraction=0.5).counts.sum() == 4


def test_hidden_files_and_folders_are_not_read_by_any_folder_reader(tmp_path):
    """A Jupyter checkpoint copy put a text in twice (in training and in validation), and a
    macOS ``._`` resource fork is not text at all; neither is data."""
    folder = write_folder(tmp_path / "data", {
        "x/1.txt": "one", "x/1b.txt": "one b", "x/.ipynb_checkpoints/1-checkpoint.txt": "one",
        "y/2.txt": "two", "y/2b.txt": "two b", "y/._2.txt": b"\x00\x05\x16\x07 Mac OS X \xff",
        "y/.hidden/3.txt": "three", ".git/x/4.txt": "four"})
    texts = ["one", "one b", "two", "two b"]
    assert _folder_views(folder) == [(["x", "y"], texts)] * 3
    assert load_lm_texts(folder) == texts
    assert [text for text, _, _ in iter_records(folder / "y", label_column=None)] == texts[2:]


CAFE_NFC, CAFE_NFD = "caf\u00e9", "cafe\u0301"


def test_a_label_written_in_two_unicode_forms_is_one_class_on_every_reader(tmp_path):
    """"café" composed (NFC, most editors) and decomposed (NFD, macOS folder names) were two
    classes, and a --classes name in one form matched no folder in the other."""
    assert CAFE_NFC != CAFE_NFD
    csv_file = tmp_path / "d.csv"
    csv_file.write_text(f"text,label\na,{CAFE_NFC}\nb,{CAFE_NFD}\nc,tea\nd,tea\n",
                        encoding="utf-8")
    jsonl = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": label} for t, label in
                                                (("a", CAFE_NFC), ("b", CAFE_NFD), ("c", "tea"),
                                                 ("d", "tea"))])
    folder = write_folder(tmp_path / "data", {f"{CAFE_NFD}/a.txt": "a", f"{CAFE_NFC}/b.txt": "b",
                                              "tea/c.txt": "c", "tea/d.txt": "d"})
    for path in (csv_file, jsonl, folder):
        for class_names in (None, [CAFE_NFC, "tea"], [CAFE_NFD, "tea"]):
            assert _folder_views(path, class_names=class_names) == \
                [([CAFE_NFC, "tea"], ["a", "b", "c", "d"])] * 3, (path, class_names)
            dataset = load_texts(path, class_names=class_names)
            assert dataset.labels.tolist() == [0, 0, 1, 1]
    only_nfd = write_folder(tmp_path / "mac", {f"{CAFE_NFD}/a.txt": "a", "tea/c.txt": "c"})
    assert load_texts(only_nfd, class_names=[CAFE_NFC, "tea"]).class_names == [CAFE_NFC, "tea"]


def test_a_column_name_in_the_other_unicode_form_is_found_on_every_reader(tmp_path):
    header_nfd = f"{CAFE_NFD},label"
    csv_file = tmp_path / "d.csv"
    csv_file.write_text(f"{header_nfd}\none,x\ntwo,y\n", encoding="utf-8")
    jsonl = write_jsonl(tmp_path / "d.jsonl", [{CAFE_NFD: "one", "label": "x"},
                                               {CAFE_NFC: "two", "label": "y"}])
    for path in (csv_file, jsonl):
        texts = [load_texts(path, text_column=CAFE_NFC).texts,
                 [t for t, _, _ in iter_records(path, text_column=CAFE_NFC)],
                 [t for t, _, _ in iter_records(path, text_column=CAFE_NFC, label_column=None)],
                 load_lm_texts(path, text_column=CAFE_NFC)]
        assert texts == [["one", "two"]] * 4, path
