"""A language model's validation score beside an interpolated Kneser-Ney baseline, on the same
tokens, and in bits per byte, which compares across tokenizers and vocabulary sizes.

Both models score every token of the validation stream: each validation text's ids followed
by the end-of-text id (`keras_attn.data.lm_windows.token_stream`), the whole preceded by one
end-of-text id, as generation puts one before a prompt. The transformer reads the stream in
consecutive windows of `max_len` ids (the last one shorter), each from a fresh context, as it
was trained; the n-gram model (`keras_attn.evaluation.ngram.KneserNey`, fitted on the training
split's stream) reads the n - 1 ids before each token.

    perplexity    = exp(total negative log-likelihood / tokens)
    bits per byte = total negative log-likelihood / ln 2 / bytes

where bytes are the validation texts' UTF-8 bytes plus one per text (its end of text). A
tokenizer with longer tokens has a higher perplexity per token for the same text; bits per
byte does not depend on it (as in Gao et al. 2020, "The Pile", section 4, and nanoGPT's
reports).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_attn.data.lm_windows import token_stream
from keras_attn.evaluation.ngram import KneserNey

NGRAM_ORDER = 3


def text_bytes(texts: Sequence[str]) -> int:
    """The UTF-8 bytes of `texts`, plus one per text for its end of text."""
    return sum(len(text.encode("utf-8")) + 1 for text in texts)


def keras_log_probabilities(model, stream: np.ndarray, max_len: int,
                            batch_size: int = 16) -> np.ndarray:
    """The natural log of the model's probability of each `stream[i]`, i >= 1, reading the
    stream in consecutive windows of `max_len` ids: float64 `[len(stream) - 1]`. The last
    window is right-padded with 0, which changes none of a causal model's real positions."""
    inputs, targets = stream[:-1], stream[1:]
    windows = math.ceil(len(inputs) / max_len)
    padded_inputs, padded_targets = (np.zeros(windows * max_len, np.int64) for _ in range(2))
    padded_inputs[:len(inputs)], padded_targets[:len(targets)] = inputs, targets
    padded_inputs = padded_inputs.reshape(windows, max_len)
    padded_targets = padded_targets.reshape(windows, max_len)
    scores = []  # each batch's target log-probabilities only, never its [n, vocab] logits
    for start in range(0, windows, batch_size):
        logits = np.asarray(model.predict(padded_inputs[start:start + batch_size], verbose=0),
                            np.float64)
        logits -= logits.max(axis=-1, keepdims=True)
        log_softmax = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        chosen = padded_targets[start:start + batch_size]
        scores.append(np.take_along_axis(log_softmax, chosen[..., None], axis=-1).reshape(-1))
    return np.concatenate(scores)[:len(targets)]


def compare_with_kneser_ney(model, tokenizer, train_texts: Sequence[str],
                            validation_texts: Sequence[str], max_len: int) -> dict[str, Any]:
    """Scores `model` and a Kneser-Ney trigram fitted on `train_texts` on every token of
    `validation_texts`.

    Args:
        model: a keras_attn language model (logits `[batch, n, vocab_size]`).
        tokenizer: its tokenizer; the end-of-text id is `tokenizer.vocab_size`.
        train_texts, validation_texts: the run's splits.
        max_len: the model's window.

    Returns:
        JSON-ready: {"tokens", "bytes", "model": {"perplexity", "bits_per_byte"},
        "kneser_ney": {"order", "perplexity", "bits_per_byte"}}.
    """
    end_of_text = tokenizer.vocab_size
    stream = np.concatenate([[end_of_text], token_stream(tokenizer, validation_texts)])
    train_stream = np.concatenate([[end_of_text], token_stream(tokenizer, train_texts)])
    vocabulary = tokenizer.vocab_size  # the ids a target can be: all but padding, + eot
    ngram = KneserNey(NGRAM_ORDER, vocabulary_size=vocabulary).fit(train_stream)
    size = text_bytes(validation_texts)
    result: dict[str, Any] = {"tokens": int(len(stream) - 1), "bytes": size}
    for name, scores in (("model", keras_log_probabilities(model, stream, max_len)),
                         ("kneser_ney", ngram.log_probabilities(stream))):
        total = -float(np.sum(scores))
        result[name] = {"perplexity": math.exp(min(total / len(scores), 700)),
                        "bits_per_byte": total / math.log(2) / size}
    result["kneser_ney"]["order"] = NGRAM_ORDER
    return result
