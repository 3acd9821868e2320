"""export/serving/triton_text_model.py outside Triton: what the text model's model.py does to
a request (decode, tokenize, pad, classify) equals what keras-attn does to the same text, for
hypothesis-drawn text and bytes. The real server runs it in test_triton_server.py."""

from __future__ import annotations

import numpy as np
import pytest
import tokenizers
from hypothesis import given
from hypothesis import strategies as st

from export import runtime
from export.artifact.tokenizer import load_tokenizer
from export.serving.triton_text_model import (
    BadInputError,
    classify,
    decode_texts,
    encode,
    padded,
)
from tests.repo_paths import FIXTURES

LANGUAGES = FIXTURES / "version_folders" / "languages" / "1"
OURS = load_tokenizer(LANGUAGES / "tokenizer.json")
THEIRS = tokenizers.Tokenizer.from_file(str(LANGUAGES / "tokenizer.json"))
PREDICTOR = runtime.load(LANGUAGES)


@given(st.lists(st.text(max_size=300), min_size=1, max_size=6))
def test_tokens_are_keras_attns(texts):
    """The same ids, truncated and padded alike; a text without a token is refused."""
    texts = [text.encode("utf-8", "replace").decode("utf-8") for text in texts]  # no surrogate
    expected = OURS.encode_batch(texts, PREDICTOR.max_len)
    if not expected.any(axis=1).all():
        with pytest.raises(BadInputError, match="at least one token after tokenization"):
            encode(THEIRS, texts, PREDICTOR.max_len)
        return
    ids = padded(encode(THEIRS, texts, PREDICTOR.max_len), np.int32)
    np.testing.assert_array_equal(ids, expected)


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=6))
def test_bytes_are_read_as_strict_utf8(values):
    array = np.array([[value] for value in values], dtype=object)
    try:
        expected = [value.decode("utf-8") for value in values]
    except UnicodeDecodeError:
        with pytest.raises(BadInputError, match="BYTES elements must be UTF-8 text"):
            decode_texts(array)
        return
    assert decode_texts(array) == expected


def test_classify_is_the_predictors():
    logits = PREDICTOR.predict(OURS.encode_batch(["Guten Morgen", "Добро утро", "你好"],
                                                 PREDICTOR.max_len))
    probabilities, labels = classify(logits, PREDICTOR.class_names)
    ours, our_labels = PREDICTOR.classify(logits)
    np.testing.assert_allclose(probabilities, ours.astype(np.float32), rtol=0, atol=1e-7)
    assert labels.shape == (3, 1) and probabilities.dtype == np.float32
    assert [label.decode() for label in labels[:, 0]] == list(our_labels)
