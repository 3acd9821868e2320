"""Tokenizer throughput on real text: Hugging Face `tokenizers` (export/artifact/tokenizer.py)
beside the
hand-written word tokenizer that keras-attn 0.1.0 shipped (kept here, and only here, as the
reference).

Both encode the same batch of real texts (the fortune fixtures in tests/fixtures/, 12
languages and 8 English topics) into a padded int32 matrix of at most `max_len` ids. Reports
texts/s and MB/s (UTF-8 bytes in), best of several rounds. `tokenizers` encodes a batch on all
cores (Rust threads); the old tokenizer ran in one Python thread, and wordpiece is also timed in
one. Then wordpiece's time in one thread, split into normalizer, pre-tokenizer, model and the
Python side.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tokenizers

from export.artifact.tokenizer import MODELS, Tokenizer, train_tokenizer
from keras_attn.data.records import split_lines

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
CORPORA = ("fortune_languages.jsonl", "fortune_topics.jsonl")
LEGACY = "keras-attn 0.1.0 word (Python re, 1 thread)"
ONE_THREAD = "tokenizers wordpiece, 1 thread"
PARALLELISM = "TOKENIZERS_PARALLELISM"


@functools.cache
def _legacy_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """keras-attn 0.1.0's character classes (export/unicode_classes.py), built the same way."""
    categories = np.array([unicodedata.category(chr(c)) for c in range(sys.maxunicode + 1)])
    word = np.isin(categories.view("U1")[::2], ["L", "N", "M"])
    invisible = np.isin(categories, ["Cc", "Cf", "Cs"])
    invisible[[c for c in np.flatnonzero(invisible) if chr(c).isspace()]] = False
    cjk = np.zeros_like(word)
    for low, high in ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF)):
        word[low : high + 1], invisible[low : high + 1] = False, True
    for low, high in ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F),
                      (0x30000, 0x323AF)):
        word[low : high + 1], cjk[low : high + 1] = False, True
    code_points = np.arange(len(categories))

    def character_class(points: np.ndarray) -> str:
        breaks = np.flatnonzero(np.diff(points) != 1)
        starts, ends = [points[0], *points[breaks + 1]], [*points[breaks], points[-1]]
        return "[" + "".join(f"{re.escape(chr(low))}-{re.escape(chr(high))}"
                             for low, high in zip(starts, ends, strict=True)) + "]"

    bmp_word = character_class(np.flatnonzero(word & (code_points < 0x10000)))
    astral_word = character_class(np.flatnonzero(word & (code_points >= 0x10000)))
    word_run = f"(?:{bmp_word}+|(?=[\\U00010000-\\U0010ffff]){astral_word})+"
    token = re.compile(f"{character_class(np.flatnonzero(cjk))}|{word_run}|\\S")
    return re.compile(character_class(np.flatnonzero(invisible))), token


class LegacyWordTokenizer:
    """keras-attn 0.1.0's tokenizer, its encoding path only: NFKC, invisible characters out,
    casefold, NFKC, regex split, dictionary look-up of the most frequent words."""

    def __init__(self, texts: list[str], max_vocab: int) -> None:
        counts: dict[str, int] = {}
        for text in texts:
            for token in self.split(text):
                counts[token] = counts.get(token, 0) + 1
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        self.ids = {token: i + 2 for i, (token, _) in enumerate(ranked[: max_vocab - 2])}

    @staticmethod
    def split(text: str) -> list[str]:
        invisible, token = _legacy_patterns()
        text = invisible.sub("", unicodedata.normalize("NFKC", text))
        return token.findall(unicodedata.normalize("NFKC", text.casefold()))

    def encode_batch(self, texts: list[str], max_len: int) -> np.ndarray:
        rows = [[self.ids.get(token, 1) for token in self.split(text)[:max_len]]
                for text in texts]
        batch = np.zeros((len(rows), max([1, *map(len, rows)])), dtype=np.int32)
        for index, row in enumerate(rows):
            batch[index, : len(row)] = row
        return batch


def real_texts() -> list[str]:
    """The fixtures' texts (800 texts, about 130 kB)."""
    return [json.loads(line)["text"] for name in CORPORA
            for line in split_lines((FIXTURES / name).read_text(encoding="utf-8"))]


def measure_tokenizer_speed(quick: bool, max_len: int = 128, vocab_size: int = 8000) -> dict:
    """Texts/s and MB/s of batch encoding, each tokenizer at its best of several rounds.

    Args:
        quick: fewer texts and rounds (well under a second in all).
        max_len: ids kept per text.
        vocab_size: each tokenizer's vocabulary size.

    Returns:
        {"texts", "megabytes", "max_len", "cores", "rounds", "tokenizers": {name: {"texts_per_s",
        "mb_per_s", "vs_legacy"}}, "stages": `wordpiece_stages`' answer}. The wordpiece
        tokenizer is timed twice: on every core, as `Tokenizer.encode_batch` runs, and in one
        thread (``TOKENIZERS_PARALLELISM=false``), like the old tokenizer.
    """
    texts = real_texts() * (1 if quick else 10)
    rounds = 3 if quick else 7
    megabytes = sum(len(text.encode("utf-8")) for text in texts) / 1e6
    legacy = LegacyWordTokenizer(texts, max_vocab=vocab_size)
    legacy.encode_batch(texts[:10], max_len)  # the Unicode tables, built once, not timed
    contenders = {LEGACY: legacy.encode_batch}
    trained = {model: train_tokenizer(texts, model=model, vocab_size=vocab_size)
               for model in MODELS}
    for model, tokenizer in trained.items():
        contenders[f"tokenizers {model}"] = tokenizer.encode_batch
    contenders[ONE_THREAD] = functools.partial(_in_one_thread, trained["wordpiece"].encode_batch)
    best = _best_seconds({name: functools.partial(encode, texts, max_len)
                          for name, encode in contenders.items()}, rounds)
    return {"texts": len(texts), "megabytes": megabytes, "max_len": max_len,
            "cores": os.cpu_count(), "rounds": rounds,
            "tokenizers": {name: {"texts_per_s": len(texts) / seconds,
                                  "mb_per_s": megabytes / seconds,
                                  "vs_legacy": best[LEGACY] / seconds}
                           for name, seconds in best.items()},
            "stages": wordpiece_stages(trained["wordpiece"], legacy, texts, max_len, rounds)}


def _best_seconds(calls: dict[str, Callable[[], object]], rounds: int,
                  clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Each call's best time on `clock` over interleaved rounds (a busy moment hurts all
    alike)."""
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = clock()
            call()
            best[name] = min(best[name], clock() - start)
    return best


def _in_one_thread(call: Callable[..., object], *args: object) -> object:
    """Call with `tokenizers`' Rust thread pool off: the library reads TOKENIZERS_PARALLELISM
    at every batch call, so the batch is encoded in the calling thread."""
    previous = os.environ.get(PARALLELISM)
    os.environ[PARALLELISM] = "false"
    try:
        return call(*args)
    finally:
        if previous is None:
            del os.environ[PARALLELISM]
        else:
            os.environ[PARALLELISM] = previous


def wordpiece_stages(tokenizer: Tokenizer, legacy: LegacyWordTokenizer, texts: list[str],
                     max_len: int, rounds: int) -> dict[str, float]:
    """Where `Tokenizer.encode_batch`'s time goes, in CPU microseconds per text, in one thread.

    Each stage is the difference between two Rust batch calls, so no per-text Python call is
    counted: the whole call; the same tokenizer without its normalizer, given the texts already
    normalized; then, instead of the regular-expression pre-tokenizer, a split at spaces
    (`WhitespaceSplit`, no regular expression) of the words already split and joined by one
    space, which leaves the model and the encoding's bookkeeping. All three give the same ids
    (checked). Python's share is `Tokenizer.encode_batch` (input checks, truncation, the padded
    int32 matrix) less the whole call.

    Returns:
        {"normalizer", "pre_tokenizer", "model", "python", "total", "legacy_total"}: µs/text;
        ``legacy_total`` is keras-attn 0.1.0's tokenizer on the same texts.
    """
    backend = tokenizer.backend
    normalized = [backend.normalizer.normalize_str(text) for text in texts]
    spaced = [" ".join(word for word, _ in backend.pre_tokenizer.pre_tokenize_str(text))
              for text in normalized]
    without_normalizer = tokenizers.Tokenizer.from_str(tokenizer.to_str())
    without_normalizer.normalizer = None
    split_at_spaces = tokenizers.Tokenizer.from_str(tokenizer.to_str())
    split_at_spaces.normalizer = None
    split_at_spaces.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    calls = {name: functools.partial(encoder.encode_batch_fast, inputs, add_special_tokens=False)
             for name, encoder, inputs in (("whole", backend, texts),
                                           ("normalized", without_normalizer, normalized),
                                           ("spaced", split_at_spaces, spaced))}
    ids = [[encoding.ids for encoding in _in_one_thread(call)] for call in calls.values()]
    if not ids[0] == ids[1] == ids[2]:
        raise AssertionError("the stages of the wordpiece tokenizer gave different ids")
    calls["encode_batch"] = functools.partial(tokenizer.encode_batch, texts, max_len)
    calls["legacy"] = functools.partial(legacy.encode_batch, texts, max_len)
    # CPU time of this thread, which does all the work here: other programs on the same cores
    # slow it down far less than they do wall time.
    seconds = _in_one_thread(_best_seconds, calls, rounds, time.thread_time)
    per_text = {name: 1e6 * value / len(texts) for name, value in seconds.items()}
    return {"normalizer": per_text["whole"] - per_text["normalized"],
            "pre_tokenizer": per_text["normalized"] - per_text["spaced"],
            "model": per_text["spaced"], "python": per_text["encode_batch"] - per_text["whole"],
            "total": per_text["encode_batch"], "legacy_total": per_text["legacy"]}


def markdown(results: dict) -> str:
    """The section of the benchmark report."""
    lines = ["\n## Tokenizer throughput (batch encode, real text)\n",
             f"{results['texts']:,} fortune texts in 12 languages and 8 English topics, "
             f"{results['megabytes']:.2f} MB UTF-8, max_len {results['max_len']}, "
             f"{results['cores']} cores, best of {results['rounds']} rounds.\n",
             "| tokenizer | texts/s | MB/s | vs 0.1.0 |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {row['texts_per_s']:,.0f} | {row['mb_per_s']:.2f} | "
              f"{row['vs_legacy']:.2f}x |" for name, row in results["tokenizers"].items()]
    stages = results["stages"]
    lines += ["\nWhere wordpiece's time goes, one thread, CPU µs per text (0.1.0 in all: "
              f"{stages['legacy_total']:.1f}):\n",
              "| normalizer | pre-tokenizer | model | Python (checks, padding) | total |",
              "|---:|---:|---:|---:|---:|",
              "| " + " | ".join(f"{stages[name]:.1f}" for name in
                               ("normalizer", "pre_tokenizer", "model", "python", "total"))
              + " |"]
    return "\n".join(lines)
