"""Decoding a causal language model one token at a time: the loop and the samplers, NumPy only.

The loop is nanoGPT's `generate()` with a key/value cache, as KerasHub's samplers keep it:

    logits, cache = step(prompt)               # the prompt in one step (prefill)
    repeat: next = sample(logits[last]); logits, cache = step([next])

`step` is whatever runs the model: `keras_attn.models.cached_decoder` (Keras layers with a cache) or
`export.runtime.decoder_step` (the exported ONNX decoder step on onnxruntime). Both share this
module, so the
choice of the next token (greedy, temperature, top-k, top-p, seeded) is the same code.

The end-of-text id: a language model trained by `keras-attn train-lm` has one id more than its
tokenizer, ``end_of_text_id = tokenizer.vocab_size``, the separator put between packed texts.
A prompt is preceded by it (every training text but the first followed one), and generation
stops when the model produces it.

At `max_len` (the model's number of position vectors) generation stops: there is no position
vector for one more token, and sliding the window would change what the model conditions on
without saying so. The result says why it stopped (`stop_reason`).

This module imports NumPy and the standard library only: the serving side uses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Sequence

import numpy as np

from export.artifact.tokenizer import PAD_ID

MAX_NEW_TOKENS = "max_new_tokens"
MAX_LEN = "max_len"
END_OF_TEXT = "end_of_text"


@dataclasses.dataclass(frozen=True)
class Generation:
    """What `generate_ids` produced.

    Attributes:
        prompt_ids: the prompt's token ids (without the leading end-of-text id).
        new_ids: the generated ids, the end-of-text id excluded.
        stop_reason: "max_new_tokens", "max_len" or "end_of_text".
        message: one readable sentence on why generation stopped.
    """

    prompt_ids: list[int]
    new_ids: list[int]
    stop_reason: str
    message: str


def check_sampling(max_new_tokens, temperature, top_k, top_p, seed,
                   repetition_penalty=1.0, no_repeat_ngram_size=0) -> None:
    """Raises ValueError naming the bad argument, what is allowed and what was received."""
    if isinstance(repetition_penalty, bool) \
            or not isinstance(repetition_penalty, (int, float)) \
            or not np.isfinite(repetition_penalty) or repetition_penalty <= 0:
        raise ValueError("repetition_penalty must be a finite number > 0 (1 = none). "
                         f"Received: repetition_penalty={repetition_penalty!r}")
    if isinstance(no_repeat_ngram_size, bool) or not isinstance(no_repeat_ngram_size, int) \
            or no_repeat_ngram_size < 0:
        raise ValueError("no_repeat_ngram_size must be an integer >= 0 (0 = off). Received: "
                         f"no_repeat_ngram_size={no_repeat_ngram_size!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 0:
        raise ValueError("max_new_tokens must be an integer >= 0. Received: "
                         f"max_new_tokens={max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not np.isfinite(temperature) or temperature < 0:
        raise ValueError("temperature must be a finite number >= 0 (0 = greedy). Received: "
                         f"temperature={temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None. Received: top_k={top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float))
                              or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be a number in (0, 1] or None. Received: top_p={top_p!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be an integer >= 0 or None. Received: seed={seed!r}")
    if temperature == 0 and (top_k is not None or top_p is not None):
        raise ValueError("top_k and top_p filter a sampling distribution; with temperature=0 "
                         "(greedy) they would be ignored. Received: temperature=0, "
                         f"top_k={top_k!r}, top_p={top_p!r}")


def filter_logits(logits: np.ndarray, top_k: int | None = None,
                  top_p: float | None = None) -> np.ndarray:
    """Keeps the top-k ids and then the smallest set of ids whose probability reaches top_p.

    Args:
        logits: float `[vocab]` (already divided by the temperature).
        top_k: keep the k largest logits (ties at the k-th value are all kept); None keeps all.
        top_p: nucleus: keep the most likely ids, in order, until their probability sum
            reaches top_p (the most likely id is always kept); None keeps all.

    Returns:
        float64 `[vocab]`: the kept logits, -inf elsewhere.
    """
    logits = np.asarray(logits, dtype=np.float64).copy()
    if top_k is not None and top_k < logits.size:
        kth = np.sort(logits)[-top_k]
        logits[logits < kth] = -np.inf
    if top_p is not None and top_p < 1:
        order = np.argsort(-logits, kind="stable")
        probabilities = softmax(logits[order])
        # An id is kept when the ids more likely than it sum to less than top_p.
        before = np.cumsum(probabilities) - probabilities
        logits[order[before >= top_p]] = -np.inf
    return logits


def softmax(logits: np.ndarray) -> np.ndarray:
    """softmax over the last axis in float64; -inf logits get probability 0."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
    return shifted / np.sum(shifted, axis=-1, keepdims=True)


def penalized_logits(logits: np.ndarray, ids: Sequence[int], repetition_penalty: float = 1.0,
                     no_repeat_ngram_size: int = 0) -> np.ndarray:
    """The last position's logits `[vocab]` after the two penalties on repeats, as Hugging
    Face's `RepetitionPenaltyLogitsProcessor` and `NoRepeatNGramLogitsProcessor` apply them.

    Args:
        logits: float `[vocab]`.
        ids: the sequence so far (the prompt, after its end-of-text id, and the new ids).
        repetition_penalty: CTRL's penalty (Keskar et al. 2019, section 4.1): the logit of
            every id already in `ids` is divided by it when positive, multiplied by it when
            negative; 1 changes nothing, above 1 discourages repeats.
        no_repeat_ngram_size: n > 0 bans every id that would complete an n-gram already in
            `ids` (its logit becomes -inf); 0 bans nothing.

    Returns:
        float64 `[vocab]`.
    """
    logits = np.asarray(logits, dtype=np.float64).copy()
    if repetition_penalty != 1.0 and len(ids):
        seen = np.unique(np.asarray(ids, dtype=np.int64))
        values = logits[seen]
        logits[seen] = np.where(values > 0, values / repetition_penalty,
                                values * repetition_penalty)
    n = no_repeat_ngram_size
    if n and len(ids) >= n:
        ids = list(ids)
        prefix = tuple(ids[len(ids) - n + 1:])  # what the next id would complete
        banned = [ids[i + n - 1] for i in range(len(ids) - n + 1)
                  if tuple(ids[i:i + n - 1]) == prefix]
        logits[banned] = -np.inf
    return logits


def next_token(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float | None,
               rng: np.random.Generator) -> int:
    """One id from the last position's logits `[vocab]`: argmax when temperature is 0, else
    a draw from softmax(logits / temperature) after top-k/top-p. The padding id is never
    chosen."""
    logits = np.asarray(logits, dtype=np.float64).copy()
    logits[PAD_ID] = -np.inf
    if temperature == 0:
        return int(np.argmax(logits))
    probabilities = softmax(filter_logits(logits / temperature, top_k, top_p))
    return int(rng.choice(probabilities.size, p=probabilities))


Step = Callable[[np.ndarray, np.ndarray, object], tuple[np.ndarray, object]]


def generate_ids(step: Step, cache: object, prompt_ids: Sequence[int], max_len: int,
                 end_of_text_id: int | None, max_new_tokens: int, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None,
                 seed: int | None = None, *, repetition_penalty: float = 1.0,
                 no_repeat_ngram_size: int = 0) -> Generation:
    """Decodes up to `max_new_tokens` ids after a prompt, with a key/value cache.

    Args:
        step: `(token_ids int64 [1, new], position_ids int64 [1, new], cache) -> (logits
            float [1, new, vocab], cache)`: runs the model on new tokens after the cached ones.
        cache: the empty cache `step` starts from.
        prompt_ids: the prompt's ids (no padding).
        max_len: the model's number of position vectors: the longest sequence.
        end_of_text_id: put before the prompt, and generation stops when it is produced; None
            for a model without one.
        max_new_tokens, temperature, top_k, top_p, seed: see `check_sampling`; the same seed
            gives the same tokens.
        repetition_penalty, no_repeat_ngram_size: see `penalized_logits`; applied before
            the choice, greedy or sampled.

    Returns:
        A `Generation`.

    Raises:
        ValueError: bad sampling arguments, or a prompt that does not fit in `max_len`.
    """
    decoding = decode_ids(step, cache, prompt_ids, max_len, end_of_text_id, max_new_tokens,
                          temperature, top_k, top_p, seed,
                          repetition_penalty=repetition_penalty,
                          no_repeat_ngram_size=no_repeat_ngram_size)
    while not isinstance(result := next_id(decoding), Generation):
        pass
    return result


def next_id(decoding: Generator[int, None, Generation]) -> int | Generation:
    """The next id of a `decode_ids` decoding, or its `Generation` once it has stopped."""
    try:
        return next(decoding)
    except StopIteration as done:
        return done.value


def decode_ids(step: Step, cache: object, prompt_ids: Sequence[int], max_len: int,
               end_of_text_id: int | None, max_new_tokens: int, temperature: float = 0.0,
               top_k: int | None = None, top_p: float | None = None,
               seed: int | None = None, *, repetition_penalty: float = 1.0,
               no_repeat_ngram_size: int = 0) -> Generator[int, None, Generation]:
    """`generate_ids` one token at a time: a generator that yields each new id as soon as it
    is chosen and returns the `Generation` (`StopIteration.value`). What a streaming server
    runs; closing it early stops the decoding there.

    The arguments are checked, and the prompt measured, when it is made, not at the first
    `next`, so that a bad request is refused before anything is streamed.

    Raises:
        ValueError: as `generate_ids`.
    """
    check_sampling(max_new_tokens, temperature, top_k, top_p, seed, repetition_penalty,
                   no_repeat_ngram_size)
    prompt_ids = [int(token_id) for token_id in prompt_ids]
    ids = ([] if end_of_text_id is None else [end_of_text_id]) + prompt_ids
    if not ids:
        raise ValueError("The prompt has no token, and the model has no end-of-text id to "
                         "start from. Received: an empty prompt")
    if len(ids) > max_len:
        raise ValueError(f"The prompt does not fit: the model reads at most max_len={max_len} "
                         f"tokens. Received: {len(ids)} tokens"
                         + (" (the end-of-text id included)" if end_of_text_id is not None
                            else ""))
    return _decoding(step, cache, prompt_ids, ids, max_len, end_of_text_id, max_new_tokens,
                     temperature, top_k, top_p, np.random.default_rng(seed),
                     (repetition_penalty, no_repeat_ngram_size))


def _decoding(step, cache, prompt_ids, ids, max_len, end_of_text_id, max_new_tokens,
              temperature, top_k, top_p, rng, penalties) -> Generator[int, None, Generation]:
    new_ids: list[int] = []
    pending = ids  # tokens the model has not read yet
    reason, message = MAX_NEW_TOKENS, f"stopped after max_new_tokens={max_new_tokens}"
    while len(new_ids) < max_new_tokens:
        start = len(ids) - len(pending)
        positions = np.arange(start, len(ids), dtype=np.int64)[None, :]
        logits, cache = step(np.asarray([pending], dtype=np.int64), positions, cache)
        last = np.asarray(logits)[0, -1]
        if penalties != (1.0, 0):
            last = penalized_logits(last, ids, *penalties)
        token = next_token(last, temperature, top_k, top_p, rng)
        if token == end_of_text_id:
            reason, message = END_OF_TEXT, "stopped at the end-of-text token"
            break
        new_ids.append(token)
        ids.append(token)
        yield token
        if len(ids) > max_len and len(new_ids) < max_new_tokens:
            # The token just chosen was predicted from max_len tokens; the model has no
            # position vector to read it, so it cannot predict one more.
            reason = MAX_LEN
            message = f"stopped at max_len={max_len}: the model reads at most {max_len} tokens"
            break
        pending = [token]
    return Generation(prompt_ids, new_ids, reason, message)


@dataclasses.dataclass(frozen=True)
class GeneratedText:
    """A prompt and its continuation, as text and as ids.

    Attributes:
        text: the prompt as given, followed by the continuation.
        continuation: the generated text alone (the tokenizer's normalization applies to it:
            lowercase with the standard tokenizers).
        prompt_ids, new_ids, stop_reason, message: as in `Generation`.
    """

    text: str
    continuation: str
    prompt_ids: list[int]
    new_ids: list[int]
    stop_reason: str
    message: str

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)


def end_of_text_id(model_vocab_size: int, tokenizer_vocab_size: int) -> int | None:
    """The end-of-text id of a language model: `tokenizer_vocab_size` when the model has one id
    more than its tokenizer (as `keras-attn train-lm` makes it), None when both are equal.

    Raises:
        ValueError: any other pair: the model was not trained with this tokenizer.
    """
    if model_vocab_size == tokenizer_vocab_size + 1:
        return tokenizer_vocab_size
    if model_vocab_size == tokenizer_vocab_size:
        return None
    raise ValueError("The model and tokenizer do not match: a language model predicts the "
                     "tokenizer's ids, plus one end-of-text id when trained by train-lm. "
                     f"Received: model vocab_size={model_vocab_size}, tokenizer vocab_size="
                     f"{tokenizer_vocab_size}")


def generate_text(step: Step, cache: object, tokenizer, prompt: str, max_len: int,
                  model_vocab_size: int, max_new_tokens: int, temperature: float = 0.0,
                  top_k: int | None = None, top_p: float | None = None,
                  seed: int | None = None, *, repetition_penalty: float = 1.0,
                  no_repeat_ngram_size: int = 0) -> GeneratedText:
    """Tokenizes `prompt`, runs `generate_ids` and decodes the new ids into text.

    Args:
        step, cache, max_len: see `generate_ids`.
        tokenizer: an `export.artifact.tokenizer.Tokenizer`.
        prompt: the text to continue (str).
        model_vocab_size: the model's output width (tokenizer.vocab_size or one more).
        max_new_tokens, temperature, top_k, top_p, seed: see `check_sampling`.
        repetition_penalty, no_repeat_ngram_size: see `penalized_logits`.

    Returns:
        A `GeneratedText`.

    Raises:
        TypeError: `prompt` is not a str.
        ValueError: bad sampling arguments, a prompt longer than `max_len` tokens, or a
            tokenizer that does not match the model.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str. Received: {type(prompt).__name__} {prompt!r:.80}")
    check_sampling(max_new_tokens, temperature, top_k, top_p, seed, repetition_penalty,
                   no_repeat_ngram_size)
    eot = end_of_text_id(model_vocab_size, tokenizer.vocab_size)
    prompt_ids = prompt_token_ids(tokenizer, prompt)
    result = generate_ids(step, cache, prompt_ids, max_len, eot, max_new_tokens, temperature,
                          top_k, top_p, seed, repetition_penalty=repetition_penalty,
                          no_repeat_ngram_size=no_repeat_ngram_size)
    continuation = continuation_text(tokenizer, prompt_ids, result.new_ids)
    return GeneratedText(prompt + continuation, continuation, result.prompt_ids, result.new_ids,
                         result.stop_reason, result.message)


def prompt_token_ids(tokenizer, prompt: str) -> list[int]:
    """The prompt's ids, without padding, as generation reads them.

    Raises:
        TypeError, ValueError: as `Tokenizer.encode_batch` (not a str, a lone surrogate).
    """
    row = tokenizer.encode_batch([prompt])[0]
    return [int(token_id) for token_id in row if token_id != PAD_ID]


def continuation_text(tokenizer, prompt_ids: Sequence[int], new_ids: Sequence[int]) -> str:
    """The text of `new_ids` after the prompt's. Decoded together with the prompt, so that a
    word piece continuing the prompt's last word joins it; a streaming server sends the
    difference between this text after one token more and before it."""
    before = tokenizer.backend.decode(list(prompt_ids))
    after = tokenizer.backend.decode(list(prompt_ids) + list(new_ids))
    if after.startswith(before):
        return after[len(before):]
    # a normalizer that rewrote the prompt's tail: decode the new ids on their own
    return " " + tokenizer.backend.decode(list(new_ids))
