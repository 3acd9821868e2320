"""Tests for export/artifact/tokenizer.py: normalization, the four models, padding and truncation,
the
standard tokenizer.json file, old files, and the same ids in a process without TensorFlow."""

import json
import os
import re
import stat

import numpy as np
import pytest
import tokenizers
from export_cases import BLOCK_IMPORTS, run_python
from hypothesis import given, settings
from hypothesis import strategies as st

from export.artifact.tokenizer import (
    DEFAULT_MODEL,
    LEGACY_FORMAT,
    MODELS,
    PAD,
    PAD_ID,
    UNK,
    Tokenizer,
    load_tokenizer,
    texts_without_tokens,
    train_tokenizer,
    vocab_size_note,
)

CORPUS = [
    "The dog loved the toy, it was very excited.",
    "The CAT ignored the box; it was empty!",
    "Café au lait? Naïve, but tasty... playing, played, player.",
    "我爱你 东京是日本的首都 👍🏽 ❤️ — 42 dogs (and 3.5 cats)",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "שלום עולם. مرحبا بالعالم.",
    "İstanbul'da hava güzel; Iğdır ve Ilgın.",
    "नमस्ते दुनिया",
    "",
    "   \t\n ",
] * 5

# Every kind of text the issue names: CJK, Cyrillic, emoji, combining marks, RTL, zero-width
# characters, the Turkish dotted İ, empty and whitespace-only strings.
UNICODE_TEXTS = [
    "東京は晴れ 我爱你abc",
    "Привет, МИР! съешь ещё",
    "ok👍🏽! ❤️ love 👨\u200d👩\u200d👧",
    "cafe\u0301 CAFÉ nai\u0308ve नमस्ते",
    "שלום\u200f עולם مرحبا بالعالم",
    "zero\u200bwidth\u200d join\ufeff soft\u00adhyphen",
    "İSTANBUL İzmir ıIiİ",
    "\ufb01ne ２０２４ [PAD] [UNK]",
    "",
    "   \t\n\u3000 ",
    "\u200b\u200d\ufeff",
]
MEGABYTE_TEXT = ("The dog loved the toy. Привет мир! 東京 👍🏽 cafe\u0301 İstanbul "
                 * 20000)[:1_000_000]


@pytest.fixture(scope="module")
def trained():
    """One tokenizer of each model, trained on CORPUS."""
    return {model: train_tokenizer(CORPUS, model=model, vocab_size=300) for model in MODELS}


def words(tokenizer: Tokenizer, text: str) -> list[str]:
    """What the normalizer and pre-tokenizer make of a text, before the model (byte-level
    words read back as text)."""
    backend = tokenizer.backend
    pieces = backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text))
    if tokenizer.model == "bpe":
        return [backend.decoder.decode([word]) for word, _ in pieces]
    return [word for word, _ in pieces]


# --- normalization and words --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The dog loved the toy, it was very excited.",
         ["the", "dog", "loved", "the", "toy", ",", "it", "was", "very", "excited", "."]),
        ("", []),
        (" \t\n\u3000 ", []),
        ("HELLO...", ["hello", ".", ".", "."]),
        ("cafe\u0301 CAFÉ", ["café", "café"]),  # NFKC composes the accent
        ("\ufb01ne ２０２４", ["fine", "2024"]),  # NFKC: ligature and full-width digits
        ("नमस्ते", ["नमस्ते"]),  # combining vowel signs stay inside the word
        ("我爱你abc", ["我", "爱", "你", "abc"]),  # one word per Han ideograph
        ("Привет, МИР", ["привет", ",", "мир"]),
        ("שלום\u200f עולם مرحبا", ["שלום", "עולם", "مرحبا"]),  # the RTL mark is invisible
        ("ok👍🏽!", ["ok", "👍", "🏽", "!"]),  # emoji are words of their own
        ("❤️ love", ["❤", "love"]),  # the emoji variation selector is dropped
        ("\ufeffsoft\u00adhyphen\u200b", ["softhyphen"]),  # BOM, soft hyphen, zero-width space
        ("İstanbul", ["i\u0307stanbul"]),  # dotted capital I lowercases to i + combining dot
        ("[PAD]", ["[", "pad", "]"]),
    ],
)
def test_normalizer_and_pre_tokenizer(trained, text, expected):
    for model in MODELS:
        assert words(trained[model], text) == expected, model


# --- the four models --------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_padding_is_id_0_and_no_text_makes_it(trained, model):
    tokenizer = trained[model]
    assert tokenizer.backend.id_to_token(PAD_ID) == PAD
    assert tokenizer.model == model
    ids = tokenizer.encode_batch(UNICODE_TEXTS + CORPUS)
    assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < tokenizer.vocab_size
    for row, text in zip(ids, UNICODE_TEXTS + CORPUS, strict=True):
        real = row[: np.count_nonzero(row)]
        assert PAD_ID not in real, text  # padding only at the end: "[PAD]" in a text is text
        assert (len(real) == 0) == (words(tokenizer, text) == []), text


def test_word_model_keeps_known_words_and_maps_others_to_unk(trained):
    tokenizer = trained["word"]
    ids = tokenizer.encode_batch(["the dog zebra"])[0]
    assert tokenizer.tokens(ids) == ["the", "dog", "[UNK]"]


@pytest.mark.parametrize("model", MODELS)
def test_token_id_is_the_id_a_lone_word_encodes_as(trained, model):
    tokenizer = trained[model]
    (expected,) = tokenizer.encode_batch(["dog"])[0]
    assert tokenizer.token_id("dog") == tokenizer.token_id("Dog") == int(expected)


@pytest.mark.parametrize(("token", "message"), [
    ("zebra", "'zebra' is not one token of this vocabulary: it encodes as ['[UNK]']"),
    ("the dog", "'the dog' is not one token of this vocabulary: it encodes as ['the', 'dog']"),
    (" ", "' ' is not one token of this vocabulary: it encodes as no token"),
])
def test_token_id_refuses_what_is_not_one_known_token(trained, token, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        trained["word"].token_id(token)
    with pytest.raises(TypeError, match="token must be a str. Received: int"):
        trained["word"].token_id(5)


def test_wordpiece_splits_unseen_words_into_known_pieces(trained):
    tokens = trained["wordpiece"].tokens(trained["wordpiece"].encode_batch(["plays"])[0])
    assert tokens[0] != "[UNK]" and all(t.startswith("##") for t in tokens[1:])
    assert "".join(t.removeprefix("##") for t in tokens) == "plays"


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40))
def test_bpe_is_byte_level_so_no_text_has_an_unknown_token(trained, text):
    tokenizer = trained["bpe"]
    ids = tokenizer.encode_batch([text])[0]
    real = ids[: np.count_nonzero(ids)].tolist()
    assert tokenizer.backend.decode(real) == "".join(words(tokenizer, text))


def test_tokens_for_display(trained):
    bpe = train_tokenizer(["café crème"] * 20, model="bpe", vocab_size=300)
    assert bpe.tokens(bpe.encode_batch(["café"])[0]) == ["café"]  # not its bytes: "cafÃ©"
    assert bpe.tokens(bpe.encode_batch(["é"])[0]) == ["é"]
    assert trained["word"].tokens([3, 0, 0]) == [trained["word"].backend.id_to_token(3)]
    with pytest.raises(ValueError, match=r"must lie in \[0, 74\). Received: \[74\]"):
        trained["word"].tokens([trained["word"].vocab_size])
    assert trained["word"].tokens([]) == []
    # An id is never cast: 3.7 was shown as the token of id 3, and True as the token of id 1.
    with pytest.raises(ValueError, match=r"must be integers\. Received: dtype float64"):
        trained["word"].tokens([3.7])
    with pytest.raises(ValueError, match=r"a boolean is not one\. Received: True among"):
        trained["word"].tokens([3, True])


def test_vocab_size_is_the_number_of_ids_and_bounds_the_vocabulary(trained):
    small = train_tokenizer(CORPUS, model="word", vocab_size=10)
    assert small.vocab_size == 10 == len(small.backend.get_vocab())
    for model in MODELS:
        assert trained[model].vocab_size == len(trained[model].backend.get_vocab())
        assert trained[model].vocab_size <= 300


def test_wordpiece_bpe_and_word_training_is_deterministic():
    # WordPiece is, because train_tokenizer numbers its "##" pieces up front; left to the
    # library, 6 runs on CORPUS gave 6 vocabularies (huggingface/tokenizers#1794, hash-map
    # order). Unigram training still is not; a resumed run therefore reads its saved tokenizer
    # (tests/training/test_classifier.py).
    for model in ("wordpiece", "bpe", "word"):
        first = train_tokenizer(CORPUS, model=model, vocab_size=300)
        again = train_tokenizer(CORPUS, model=model, vocab_size=300)
        assert first.to_str() == again.to_str(), model


# --- padding and truncation -------------------------------------------------------------------


def test_encode_batch_pads_right_with_zero_to_the_longest(trained):
    ids = trained["word"].encode_batch(["the dog", "the", "the dog loved the toy"])
    assert ids.shape == (3, 5)
    assert ids[1, 1:].tolist() == [0] * 4 and ids[0, 2:].tolist() == [0] * 3
    assert np.all(ids[2] != 0)


def test_batch_of_empty_texts_has_one_padding_column(trained):
    for model in MODELS:
        assert trained[model].encode_batch(["", "  \u200b "]).tolist() == [[0], [0]]
        assert trained[model].encode_batch([]).shape == (0, 1)


@pytest.mark.parametrize("model", MODELS)
def test_truncation_keeps_the_first_max_len_ids(trained, model):
    full = trained[model].encode_batch(UNICODE_TEXTS)
    for max_len in (1, 3, 7):
        cut = trained[model].encode_batch(UNICODE_TEXTS, max_len=max_len)
        width = min(max_len, full.shape[1])
        assert cut.shape == (len(UNICODE_TEXTS), width)
        assert np.array_equal(cut, full[:, :width])


@pytest.mark.parametrize("model", MODELS)
def test_a_megabyte_text(trained, model):
    ids = trained[model].encode_batch([MEGABYTE_TEXT, "the dog"], max_len=64)
    assert ids.shape == (2, 64) and np.all(ids[0] != 0)
    prefix = trained[model].encode_batch([MEGABYTE_TEXT[:400]], max_len=64)
    assert np.array_equal(ids[0], prefix[0])
    one_word = trained[model].encode_batch(["a" * 1_000_000], max_len=64)  # no space at all
    assert one_word.shape[0] == 1 and np.all(one_word != 0)


@pytest.mark.parametrize("max_len", [0, -1, 2.5, True, "10"])
def test_encode_batch_rejects_bad_max_len(trained, max_len):
    with pytest.raises(ValueError, match="max_len must be a positive integer or None. Received"):
        trained["word"].encode_batch(["the"], max_len=max_len)


def test_encode_batch_rejects_a_single_str_and_non_str_texts(trained):
    with pytest.raises(TypeError, match="list of texts. Received: str"):
        trained["word"].encode_batch("the dog")
    with pytest.raises(TypeError, match="Received: text #1 = int 5"):
        trained["word"].encode_batch(["the", 5])


THAI = "ภาษาไทยเป็นภาษาที่ไม่มีการเว้นวรรคระหว่างคำ ผู้คนจึงต้องอ่านจากบริบทว่าคำหนึ่งจบที่ใด"


@pytest.mark.parametrize("model", ["wordpiece", "unigram", "bpe"])
def test_a_word_of_more_than_100_characters_is_not_unknown(model):
    """Issue 19 case 1 (transformers #17551): WordPiece maps a word of over 100 characters to
    [UNK] whole, and Thai (no spaces between words) made one such word of a sentence: a
    162-character sentence encoded as ['[UNK]']. Runs of letters are cut every 100 characters,
    in the tokenizer.json itself, so training and serving read it alike."""
    sentence = (THAI.replace(" ", "") * 3)[:162]
    long_word = "pneumonoultramicroscopicsilicovolcanoconiosis" * 3  # 135 letters
    tokenizer = train_tokenizer([sentence, long_word, "the dog was happy"] * 10, model=model,
                                vocab_size=200)
    for text in (sentence, long_word):
        ids = tokenizer.encode_batch([text])[0]
        tokens = tokenizer.tokens(ids[ids != PAD_ID].tolist())
        assert UNK not in tokens and len(tokens) >= 2, tokens
        if model != "bpe":  # (bpe's tokens are bytes, shown as characters)
            normalized = tokenizer.backend.normalizer.normalize_str(text)  # NFKC: "ำ" is "ํา"
            assert "".join(token.removeprefix("##") for token in tokens) == normalized


def test_a_lone_surrogate_is_a_value_error_naming_the_text(trained):
    """Issue 19 case 8: the Rust tokenizer raised TypeError ("TextEncodeInput must be ...") on a
    whole batch for one text with half a surrogate pair; the server answered 500."""
    for caller in (lambda texts: trained["word"].encode_batch(texts),
                   lambda texts: train_tokenizer(texts, model="word", vocab_size=20)):
        with pytest.raises(ValueError, match=r"text #1 holds a lone UTF-16 surrogate U\+D83D "
                                             r"at character 4"):
            caller(["the dog", "the \ud83d cat"])
    assert trained["word"].encode_batch(["the \U0001f436 dog"]).shape == (1, 3)  # a real pair


# --- training arguments -----------------------------------------------------------------------


def test_train_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"model must be one of .*Received: model='sentencepiece'"):
        train_tokenizer(CORPUS, model="sentencepiece")
    for bad in (2, 0, 2.5, True, "100"):
        with pytest.raises(ValueError, match="vocab_size must be an integer >= 3"):
            train_tokenizer(CORPUS, vocab_size=bad)
    with pytest.raises(TypeError, match="list of texts"):
        train_tokenizer("the dog")
    with pytest.raises(ValueError, match="found no tokens.*Received: 3 text"):
        train_tokenizer(["", "  ", "\u200b"])
    assert DEFAULT_MODEL in MODELS


TWO_TEXTS = ["the dog loved the toy, it was very excited.", "a cat sat on the mat"] * 5  # 20 chars


def test_a_unigram_vocabulary_below_its_characters_says_the_least_it_takes():
    """The Rust trainer raised a bare Exception ("not large enough to contain all chars")."""
    with pytest.raises(ValueError, match=r"20 characters they use. Expected vocab_size >= 20. "
                                         r"Received: vocab_size=19"):
        train_tokenizer(TWO_TEXTS, model="unigram", vocab_size=19)
    assert train_tokenizer(TWO_TEXTS, model="unigram", vocab_size=20).vocab_size >= 20


@pytest.mark.parametrize("model, asked, note", [
    ("word", 17, None),
    ("word", 16000, "has 17 entries: the training texts yield no more distinct words than that"),
    ("wordpiece", 3, "has 37 entries: it keeps every character it saw, alone and inside a word"),
    ("bpe", 3, "has 257 entries: it keeps all 256 bytes and its special tokens"),
    ("unigram", 16000, "has 24 entries: the training texts yield no more pieces than that"),
])
def test_a_vocabulary_of_another_size_than_asked_says_why(model, asked, note):
    said = vocab_size_note(train_tokenizer(TWO_TEXTS, model=model, vocab_size=asked), asked,
                           model)
    assert said is None if note is None else (
        said.startswith(f"vocab_size {asked} (--vocab-size) was asked for; the {model} ")
        and note in said), said


# --- the file: standard tokenizer.json --------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_file_round_trips_through_the_library_unchanged(trained, model, tmp_path):
    path = tmp_path / "tokenizer.json"
    trained[model].save(path)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["model"]["type"] == {"wordpiece": "WordPiece", "bpe": "BPE",
                                         "unigram": "Unigram", "word": "WordLevel"}[model]
    assert document["added_tokens"] == []
    texts = UNICODE_TEXTS + [MEGABYTE_TEXT[:5000]]
    expected = trained[model].encode_batch(texts)
    assert np.array_equal(load_tokenizer(path).encode_batch(texts), expected)
    library = tokenizers.Tokenizer.from_file(str(path))  # the library alone, no keras-attn code
    for row, encoding in zip(expected, library.encode_batch(texts), strict=True):
        assert row[: len(encoding.ids)].tolist() == encoding.ids
        assert not row[len(encoding.ids):].any()


def test_save_is_atomic_and_follows_the_umask(trained, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text("old", encoding="utf-8")
    old_umask = os.umask(0o027)
    try:
        trained["word"].save(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["tokenizer.json"]  # no temporary file left behind
    assert load_tokenizer(path).to_str() == trained["word"].to_str()


def test_old_keras_attn_tokenizer_file_fails_saying_how_to_retrain(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"format": LEGACY_FORMAT, "format_version": 1,
                                "vocabulary": ["[PAD]", "[UNK]", "the"]}), encoding="utf-8")
    with pytest.raises(ValueError) as error:
        load_tokenizer(path)
    message = str(error.value)
    assert str(path) in message and LEGACY_FORMAT in message
    assert "keras-attn train" in message and "keras-attn export" in message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe not utf-8", "not UTF-8 JSON"),
        (b"{not json", "not UTF-8 JSON"),
        (b'{"version": "1.0", "model": {"type": "Nope"}}', "not a Hugging Face tokenizer"),
    ],
)
def test_load_rejects_malformed_file_naming_it(tmp_path, content, message):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        load_tokenizer(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("setting", ["truncation", "padding"])
def test_load_refuses_a_file_that_truncates_or_pads(trained, tmp_path, setting):
    """Issue 19 case 3: a tokenizer.json re-saved by another tool with truncation or padding on
    made `predict` and `serve` answer other ids than the model was trained on (0.73 instead of
    0.58); only `verify` noticed. Every loader refuses it now, saying what to set back."""
    backend = tokenizers.Tokenizer.from_str(trained["word"].backend.to_str())
    if setting == "truncation":
        backend.enable_truncation(2)
    else:
        backend.enable_padding(length=16)
    path = tmp_path / "tokenizer.json"
    backend.save(str(path))
    with pytest.raises(ValueError, match=f'sets {setting} .*set "{setting}" back to null'):
        load_tokenizer(path)


def test_load_rejects_a_tokenizer_without_pad_at_id_0(tmp_path):
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({"a": 0, "[PAD]": 1}, "a"))
    path = tmp_path / "tokenizer.json"
    backend.save(str(path))
    with pytest.raises(ValueError, match=r"needs '\[PAD\]' at id 0. Received: id 0 = 'a'"):
        load_tokenizer(path)


def test_load_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "missing.json")


# --- the same ids where TensorFlow and Keras cannot be imported ---------------------------------


def test_same_ids_in_a_process_that_cannot_import_tensorflow_or_keras(trained, tmp_path):
    texts = UNICODE_TEXTS + CORPUS + [MEGABYTE_TEXT]
    (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    for model in MODELS:
        trained[model].save(tmp_path / f"{model}.json")
    code = BLOCK_IMPORTS + (
        "import json, pathlib\n"
        "from export.artifact.tokenizer import MODELS, load_tokenizer\n"
        "folder = pathlib.Path(sys.argv[2])\n"
        "texts = json.loads((folder / 'texts.json').read_text(encoding='utf-8'))\n"
        "ids = {m: load_tokenizer(folder / f'{m}.json').encode_batch(texts, 64).tolist()\n"
        "       for m in MODELS}\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "print(json.dumps(ids))\n"
    )
    result = run_python(code, "tensorflow,keras", str(tmp_path))
    assert result.returncode == 0, result.stderr
    serving = json.loads(result.stdout)
    for model in MODELS:
        assert serving[model] == trained[model].encode_batch(texts, 64).tolist(), model


@pytest.mark.parametrize("model", MODELS)
def test_texts_without_tokens_are_the_rows_of_padding_of_every_model(model):
    """Found before any tokenizer is trained (data loading), they are exactly the texts every
    model encodes to no id at all."""
    texts = ["a", "", " \t\n", "\u200b\u00ad", "[PAD]", "🎉", "\ufe0f", "İ"]
    assert texts_without_tokens(texts) == [1, 2, 3, 6]
    rows = train_tokenizer(CORPUS, model=model, vocab_size=300).encode_batch(texts)
    assert np.flatnonzero(~rows.any(axis=1)).tolist() == [1, 2, 3, 6]
