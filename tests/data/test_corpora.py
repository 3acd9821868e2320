"""Tests for keras_attn/data/corpora.py and the fixtures made with it: fortune files, sampling,
a missing package, and the committed samples of real text."""

from collections import Counter
from pathlib import Path

import pytest
from repo_paths import FIXTURES

from keras_attn.data.corpora import (
    ENGLISH_TOPICS,
    LANGUAGES,
    CorpusNotInstalledError,
    Source,
    load_corpus,
    read_fortunes,
)
from keras_attn.data.records import load_texts


def write_fortunes(path: Path, cookies: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n%\n".join(cookies) + "\n%\n", encoding="utf-8")
    return path


def test_read_fortunes_splits_on_percent_lines(tmp_path):
    path = tmp_path / "f"
    path.write_text("first line\nsecond line\n%\n\n%  \n  100% sure\n%\nlast", encoding="utf-8")
    assert read_fortunes(path) == ["first line\nsecond line", "100% sure", "last"]


@pytest.fixture
def root(tmp_path):
    write_fortunes(tmp_path / "xx" / "a", [f"a long enough text number {i}" for i in range(9)])
    write_fortunes(tmp_path / "xx" / "a.dat", ["binary index, never read as text"])
    write_fortunes(tmp_path / "yy", [f"another language's text {i}" for i in range(3)]
                   + ["short", "a long enough text number 0"])  # too short; also in xx
    return tmp_path


SOURCES = {"xx": Source("fortunes-xx", ("xx/*",)), "yy": Source("fortunes-yy", ("yy",))}


def test_load_corpus_filters_deduplicates_and_samples(root):
    data = load_corpus(SOURCES, max_per_class=5, min_chars=10, max_chars=100, seed=0, root=root)
    assert data.class_names == ["xx", "yy"]
    assert Counter(data.labels.tolist()) == {0: 5, 1: 3}
    assert "a long enough text number 0" not in data.texts  # under both classes: dropped
    assert "short" not in data.texts and not any("binary" in t for t in data.texts)
    again = load_corpus(SOURCES, max_per_class=5, min_chars=10, max_chars=100, seed=0, root=root)
    other = load_corpus(SOURCES, max_per_class=5, min_chars=10, max_chars=100, seed=1, root=root)
    assert again.texts == data.texts and other.texts != data.texts


def test_missing_package_names_the_apt_command(root):
    sources = {**SOURCES, "zz": Source("fortunes-zz", ("zz/*",))}
    with pytest.raises(CorpusNotInstalledError, match="fortunes-zz is not installed .*"
                       "sudo apt-get install fortunes-zz"):
        load_corpus(sources, 5, 10, 100, 0, root=root)
    with pytest.raises(FileNotFoundError):  # the CLI's "bad input": exit code 2
        load_corpus(sources, 5, 10, 100, 0, root=root)


@pytest.mark.parametrize(("name", "classes"), [("fortune_languages.jsonl", list(LANGUAGES)),
                                               ("fortune_topics.jsonl", list(ENGLISH_TOPICS))])
def test_fixtures_hold_a_few_hundred_real_texts_per_corpus(name, classes):
    data = load_texts(FIXTURES / name, class_names=classes)
    assert data.class_names == classes
    assert Counter(data.labels.tolist()) == {label: 40 for label in range(len(classes))}
    assert len(set(data.texts)) == len(data.texts)
    assert all(20 <= len(text) <= 500 for text in data.texts)


def test_language_fixture_is_in_its_languages():
    data = load_texts(FIXTURES / "fortune_languages.jsonl")
    by_language = {name: " ".join(t for t, y in zip(data.texts, data.labels, strict=True)
                                  if data.class_names[y] == name) for name in data.class_names}
    assert sum("\u4e00" <= c <= "\u9fff" for c in by_language["zh"]) > 1000
    assert sum("а" <= c <= "я" for c in by_language["ru"]) > 1000
    assert sum("а" <= c <= "я" for c in by_language["bg"]) > 1000
    assert sum(c in "ąęłńśźż" for c in by_language["pl"]) > 50
    assert sum(c in "ĉĝĥĵŝŭ" for c in by_language["eo"]) > 20
