"""Tests for export/tokenizer.py: normalisation, vocabulary, encoding, files, import boundary."""

import json
import subprocess
import sys
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from export.tokenizer import FORMAT_VERSION, Tokenizer
from export.unicode_classes import character_class

REPO_ROOT = Path(__file__).resolve().parents[1]

CORPUS = [
    "The dog loved the toy, it was very excited.",
    "The CAT ignored the box; it was empty!",
    "",
    "   \t\n ",
    "Café au lait? Naïve, but tasty...",
    "我爱你 👍🏽 ❤️ — 42 dogs (and 3.5 cats)",
]

texts = st.text(max_size=60)
sentences = st.lists(st.sampled_from(["the", "Dog", "toy", ",", "!", "é", "我", "👍", " ", "  "]),
                     max_size=30).map("".join)


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.fit(CORPUS, max_vocab=1000)


# --- normalisation and splitting -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("The dog loved the toy, it was very excited.",
         ["the", "dog", "loved", "the", "toy", ",", "it", "was", "very", "excited", "."]),
        ("", []),
        (" \t\n\u3000 ", []),
        ("HELLO...", ["hello", ".", ".", "."]),
        ("don't", ["don", "'", "t"]),
        ("Straße", ["strasse"]),  # casefold, not lower
        ("cafe\u0301 CAFÉ", ["café", "café"]),  # NFKC composes the accent
        ("\ufb01ne ２０２４", ["fine", "2024"]),  # NFKC: ligature and full-width digits
        ("नमस्ते", ["नमस्ते"]),  # combining vowel signs stay inside the word
        ("我爱你abc", ["我", "爱", "你", "abc"]),  # one token per CJK ideograph
        ("ok👍🏽!", ["ok", "👍", "🏽", "!"]),  # emoji are tokens of their own
        ("❤️ love", ["❤", "love"]),  # the emoji variation selector is dropped
        ("\ufeffsoft\u00adhyphen\u200b", ["softhyphen"]),  # BOM, soft hyphen, zero-width space
    ],
)
def test_split_normalises_and_separates_punctuation(text, tokens):
    assert Tokenizer.split(text) == tokens


def test_character_class_writes_runs_as_ranges():
    assert character_class(np.array([48, 49, 50, 97, 99, 100])) == "[0-2a-ac-d]"
    assert character_class(np.array([ord("-"), ord("]")])) == r"[\--\-\]-\]]"


def test_split_rejects_non_str():
    with pytest.raises(TypeError, match="Received: bytes"):
        Tokenizer.split(b"bytes")


@given(texts)
def test_split_is_idempotent_on_its_own_output(text):
    tokens = Tokenizer.split(text)
    assert Tokenizer.split(" ".join(tokens)) == tokens
    assert all(token and not any(char.isspace() for char in token) for token in tokens)


# --- the vocabulary ---------------------------------------------------------------------------


def test_fit_ranks_by_frequency_then_alphabetically():
    tokenizer = Tokenizer.fit(["b a c b", "c b", "z y"], max_vocab=5)
    # b: 3, c: 2, then a, y, z tie at 1 and the alphabetical first one gets the last slot
    assert tokenizer.vocabulary == ["[PAD]", "[UNK]", "b", "c", "a"]
    assert tokenizer.vocab_size == 5


def test_fit_does_not_depend_on_text_order():
    assert Tokenizer.fit(CORPUS, 12) == Tokenizer.fit(CORPUS[::-1], 12)


def test_fit_keeps_every_token_when_max_vocab_is_large(tokenizer):
    distinct = {token for text in CORPUS for token in Tokenizer.split(text)}
    assert set(tokenizer.vocabulary[2:]) == distinct
    assert tokenizer.vocabulary[:2] == [Tokenizer.PAD, Tokenizer.UNK]


@pytest.mark.parametrize("max_vocab", [2, 0, -1, 2.5, True, "10"])
def test_fit_rejects_bad_max_vocab(max_vocab):
    with pytest.raises(ValueError, match="Received: max_vocab="):
        Tokenizer.fit(CORPUS, max_vocab)


def test_fit_rejects_corpus_without_tokens_and_single_str():
    with pytest.raises(ValueError, match="no tokens"):
        Tokenizer.fit(["", "  "], 10)
    with pytest.raises(TypeError, match="not one str"):
        Tokenizer.fit("a text", 10)


@pytest.mark.parametrize(
    ("vocabulary", "message"),
    [
        (["[UNK]", "[PAD]", "a"], "must start with"),
        (["a"], "must start with"),
        (["[PAD]", "[UNK]", "a", "b", "a"], r"duplicates: \['a'\]"),
        (["[PAD]", "[UNK]", "[PAD]"], "duplicates"),
        (["[PAD]", "[UNK]", 3], "must be a str"),
        (["[PAD]", "[UNK]", "Dog"], r"single normalised token.*'Dog'"),
        (["[PAD]", "[UNK]", "two words"], "single normalised token"),
        (["[PAD]", "[UNK]", "end."], "single normalised token"),
        (["[PAD]", "[UNK]", ""], "single normalised token"),
    ],
)
def test_constructor_validates_vocabulary(vocabulary, message):
    with pytest.raises(ValueError, match=message):
        Tokenizer(vocabulary)


# --- encoding and decoding --------------------------------------------------------------------


def test_encode_maps_unknown_words_to_unk(tokenizer):
    ids = tokenizer.encode("The dog ate a zebra!")
    assert len(ids) == 6
    assert ids[3] == ids[4] == Tokenizer.UNK_ID  # "ate", "a" never appear in CORPUS
    assert tokenizer.decode(ids) == "the dog [UNK] [UNK] [UNK] !"


def test_special_token_text_cannot_produce_special_ids(tokenizer):
    assert Tokenizer.PAD_ID not in tokenizer.encode("[PAD] [UNK]")
    assert tokenizer.split("[PAD]") == ["[", "pad", "]"]


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_and_whitespace_texts_encode_to_nothing(tokenizer, text):
    assert tokenizer.encode(text) == []


@pytest.mark.parametrize("max_len", [0, -3, 1.5, True])
def test_encode_rejects_bad_max_len(tokenizer, max_len):
    with pytest.raises(ValueError, match="Received: max_len="):
        tokenizer.encode("the dog", max_len=max_len)


def test_encode_batch_pads_right_with_zero(tokenizer):
    batch = tokenizer.encode_batch(["the dog", "", "the toy , it was"], max_len=4)
    assert batch.dtype == np.int32
    assert batch.shape == (3, 4)
    assert batch[0].tolist() == tokenizer.encode("the dog") + [0, 0]
    assert batch[1].tolist() == [0, 0, 0, 0]
    assert batch[2].tolist() == tokenizer.encode("the toy , it")


def test_encode_batch_of_empty_texts_has_one_padding_column(tokenizer):
    assert tokenizer.encode_batch(["", "  "]).tolist() == [[0], [0]]
    assert tokenizer.encode_batch([]).shape == (0, 1)


def test_encode_batch_rejects_single_str(tokenizer):
    with pytest.raises(TypeError, match="list of texts"):
        tokenizer.encode_batch("the dog", max_len=4)


def test_decode_skips_padding_and_rejects_out_of_range(tokenizer):
    row = tokenizer.encode_batch(["The dog!", "the dog loved the toy"])[0]
    assert tokenizer.decode(row) == "the dog !"
    with pytest.raises(ValueError, match=f"Received: {tokenizer.vocab_size}"):
        tokenizer.decode([2, tokenizer.vocab_size])
    with pytest.raises(ValueError, match="Received: -1"):
        tokenizer.decode([-1])


@settings(max_examples=60, deadline=None)
@given(st.lists(texts, min_size=1, max_size=4), texts,
       st.integers(min_value=3, max_value=40), st.integers(min_value=1, max_value=20))
def test_encoding_properties(corpus, text, max_vocab, max_len):
    if not any(Tokenizer.split(t) for t in corpus):
        corpus = [*corpus, "fallback"]
    tokenizer = Tokenizer.fit(corpus, max_vocab)
    ids = tokenizer.encode(text)
    assert len(ids) == len(Tokenizer.split(text))
    assert all(1 <= token_id < tokenizer.vocab_size for token_id in ids)  # never 0 for a token
    assert tokenizer.encode(text, max_len=max_len) == ids[:max_len]
    batch = tokenizer.encode_batch([text, *corpus], max_len=max_len)
    assert batch.shape[1] == max(1, *(len(tokenizer.encode(t, max_len)) for t in [text, *corpus]))
    assert batch[0].tolist() == ids[:max_len] + [0] * (batch.shape[1] - len(ids[:max_len]))
    assert ((batch >= 0) & (batch < tokenizer.vocab_size)).all()


@settings(deadline=None)
@given(st.lists(sentences, min_size=1, max_size=5))
def test_decode_inverts_encode_for_known_words(corpus):
    if not any(Tokenizer.split(t) for t in corpus):
        corpus = [*corpus, "fallback"]
    tokenizer = Tokenizer.fit(corpus, max_vocab=100)
    for text in corpus:
        assert tokenizer.decode(tokenizer.encode(text)) == " ".join(Tokenizer.split(text))


# --- JSON and files ---------------------------------------------------------------------------


def test_json_round_trip_keeps_vocabulary(tokenizer):
    document = json.loads(tokenizer.to_json())
    assert document["format_version"] == FORMAT_VERSION
    assert Tokenizer.from_json(tokenizer.to_json()) == tokenizer


def test_save_and_load_round_trip_as_utf8(tokenizer, tmp_path):
    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    assert "我".encode() in path.read_bytes()  # readable UTF-8, not \\u escapes
    loaded = Tokenizer.load(str(path))
    assert loaded == tokenizer
    assert loaded.encode("Café, 我!") == tokenizer.encode("Café, 我!")
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_saved_file_records_the_unicode_version(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "tokenizer.json")
    document = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    assert document["unicode_version"] == unicodedata.unidata_version
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same version loads without a word
        assert Tokenizer.load(tmp_path / "tokenizer.json") == tokenizer


@pytest.mark.parametrize("read", ["load", "from_json"])
def test_other_unicode_version_warns_naming_both(tmp_path, read):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(_document(unicode_version="1.1.0"))
    with pytest.warns(UserWarning, match="may split differently") as caught:
        loaded = (Tokenizer.load(path) if read == "load"
                  else Tokenizer.from_json(path.read_text(encoding="utf-8")))
    assert loaded.vocabulary == ["[PAD]", "[UNK]", "dog"]
    message = str(caught[0].message)
    assert "Unicode 1.1.0" in message and f"Unicode {unicodedata.unidata_version}" in message
    assert caught[0].filename == __file__  # points at the caller, not at the tokenizer


def test_file_without_unicode_version_loads_silently(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(_document())
    assert "unicode_version" not in json.loads(path.read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Tokenizer.load(path).vocabulary == ["[PAD]", "[UNK]", "dog"]


def _document(**changes):
    document = {"format": "keras-attn-tokenizer", "format_version": FORMAT_VERSION,
                "vocabulary": ["[PAD]", "[UNK]", "dog"]}
    return json.dumps({**document, **changes}).encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (_document(format_version=99), "format_version=99"),
        (_document(format="something-else"), "format='something-else'"),
        (_document(vocabulary="dog"), "'vocabulary' must be a list"),
        (_document(vocabulary=["[PAD]", "[UNK]", "dog", "dog"]), "duplicates"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_load_rejects_malformed_file_naming_it(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        Tokenizer.load(path)
    assert "broken.json" in str(error.value)


def test_from_json_rejects_malformed_text():
    with pytest.raises(ValueError, match="Malformed tokenizer JSON"):
        Tokenizer.from_json("{}")


def test_load_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        Tokenizer.load(tmp_path / "missing.json")


# --- the serving import boundary --------------------------------------------------------------


def test_import_does_not_load_tensorflow_or_keras():
    code = (
        "import sys, export.tokenizer as t\n"
        "t.Tokenizer.fit(['a b'], 5).encode_batch(['a'], 4)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"
