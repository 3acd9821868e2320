"""The tokenizer shared by training (Keras) and serving (onnxruntime): Hugging Face `tokenizers`.

One `tokenizer.json` file is the whole tokenizer (normalizer, pre-tokenizer, model, decoder),
in the library's standard format: `tokenizers.Tokenizer.from_file` and
`transformers.PreTrainedTokenizerFast(tokenizer_file=...)` read it unchanged. Training and
serving both encode through that one file and that one library, so they make the same ids.

Text becomes token ids in three steps:

1. Normalize: Unicode NFKC, remove invisible characters (controls, format characters such as
   zero-width joiners, soft hyphens and the byte order mark, and emoji variation selectors, but
   never whitespace), lowercase, NFKC again.
2. Pre-tokenize: whitespace separates words; a word is a run of letters, digits and combining
   marks ("naïve", "नमस्ते", "42"); every other visible character (punctuation, symbols, emoji) is
   a word of its own, and so is each Han ideograph, since those scripts put no spaces between words.
3. Model, one of `MODELS`, learned from the training texts:
   - ``"wordpiece"``: words split into the longest known pieces ("playing" -> "play", "##ing");
   - ``"bpe"``: byte-level byte-pair encoding; every byte is in the vocabulary, so no text ever
     has an unknown token;
   - ``"unigram"``: the most likely split under a unigram language model of pieces;
   - ``"word"``: whole words only (the walkthrough's examples); rarer words become ``[UNK]``.

Id 0 is padding (``"[PAD]"``); with every model but ``"bpe"``, id 1 is ``"[UNK]"``. The two are
ordinary vocabulary entries, not "added tokens", so a text that contains the string "[PAD]" is
split like any other text and never yields a padding id.

This module imports only `tokenizers`, numpy and the standard library: the serving path must
never load TensorFlow or Keras.
"""

from __future__ import annotations

import functools
import json
import os
import re
import uuid
from collections.abc import Sequence

import numpy as np
import tokenizers
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers

from export.artifact.token_ids import as_id_array
from export.artifact.tokenizer_choices import DEFAULT_MODEL, DEFAULT_VOCAB_SIZE, MODELS

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID = 0
LEGACY_FORMAT = "keras-attn-tokenizer"

# Controls, format characters, surrogates and variation selectors, less whitespace ("\t", "\n").
_INVISIBLE = r"[\p{Cc}\p{Cf}\p{Cs}\x{FE00}-\x{FE0F}\x{E0100}-\x{E01EF}&&[^\s]]"
# One Han ideograph, one run of word characters, or any other single visible character. A
# run is cut every MAX_WORD_CHARS characters: WordPiece maps a longer word to [UNK] whole
# (its max_input_chars_per_word), and Thai, Lao, Khmer or Burmese, written without spaces,
# make one such word of a whole sentence (huggingface/transformers #17551).
MAX_WORD_CHARS = 100
_WORD = rf"\p{{Han}}|[\p{{L}}\p{{N}}\p{{M}}&&\P{{Han}}]{{1,{MAX_WORD_CHARS}}}|\S"
_MODEL_NAMES = {models.WordPiece: "wordpiece", models.BPE: "bpe", models.Unigram: "unigram",
                models.WordLevel: "word"}


def _normalizer() -> normalizers.Normalizer:
    return normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(_INVISIBLE), ""),
                                 normalizers.Lowercase(), normalizers.NFKC()])


def _pre_tokenizer(byte_level: bool) -> pre_tokenizers.PreTokenizer:
    # invert: the pattern matches the words, and whatever lies between them (whitespace) goes.
    steps = [pre_tokenizers.Split(Regex(_WORD), "removed", invert=True)]
    if byte_level:  # each word's UTF-8 bytes, written as 256 visible characters
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    return pre_tokenizers.Sequence(steps)


@functools.cache
def _word_steps() -> tuple[normalizers.Normalizer, pre_tokenizers.PreTokenizer]:
    return _normalizer(), _pre_tokenizer(byte_level=False)


def _words(text: str) -> list[tuple[str, tuple[int, int]]]:
    """The words of a text as the tokenizer sees them (normalized, split), before the model."""
    normalizer, pre_tokenizer = _word_steps()
    return pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))


@functools.cache
def _word_counter() -> tokenizers.Tokenizer:
    """A tokenizer with every model's normalizer and pre-tokenizer, and a one-entry vocabulary:
    one id per word, so an encoding's length is the text's number of words."""
    counter = tokenizers.Tokenizer(models.WordLevel({UNK: 0}, unk_token=UNK))
    counter.normalizer, counter.pre_tokenizer = _word_steps()
    return counter


def texts_without_tokens(texts: Sequence[str]) -> list[int]:
    """The indices of the texts that no tokenizer of this module turns into any token: empty,
    whitespace or invisible characters only. Every model makes at least one id per word
    (``"[UNK]"``, or bytes with ``"bpe"``), so this holds for all of them, before training one.

    Args:
        texts: a list of texts (not a single str).

    Returns:
        Ascending indices into ``texts``.

    Raises:
        TypeError: ``texts`` is not a list of str.
    """
    texts = _check_texts(texts, "texts_without_tokens")
    encodings = _word_counter().encode_batch_fast(texts, add_special_tokens=False)
    return [index for index, encoding in enumerate(encodings) if not encoding.ids]


def _model_and_trainer(model: str, vocab_size: int,
                       texts: list[str]) -> tuple[models.Model, trainers.Trainer]:
    specials, quiet = [PAD, UNK], {"show_progress": False}
    if model == "wordpiece":
        # The trainer numbers each "##" + character (a character inside a word) as it first
        # meets it while walking a Rust hash map, whose order changes from one run to the next;
        # ties between merges are broken by those numbers, so two runs on the same texts learned
        # different vocabularies (huggingface/tokenizers#1794). Declared up front, sorted, their
        # numbers are fixed and WordPiece training is deterministic. They are the very pieces
        # the trainer would have made, so the vocabulary budget is spent as before.
        inside = {character for text in texts for word, _ in _words(text)
                  for character in word[1:]}
        continuing = [f"##{character}" for character in sorted(inside)]
        return (models.WordPiece(unk_token=UNK),
                trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials
                                          + continuing, **quiet))
    if model == "bpe":
        return (models.BPE(),
                trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD],
                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), **quiet))
    if model == "unigram":
        return (models.Unigram(),
                trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials,
                                        unk_token=UNK, **quiet))
    return (models.WordLevel(unk_token=UNK),
            trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      **quiet))


# A UTF-16 surrogate code point alone in a str: what JSON's "\ud83d" escape without its low
# half decodes to. It is no character, UTF-8 cannot encode it, and the Rust tokenizer refuses
# the whole batch with a TypeError that names neither the text nor the cause.
_SURROGATE = re.compile("[\ud800-\udfff]")


def surrogate_message(text: str, where: str) -> str | None:
    """The message for a text holding a lone surrogate, or None for a valid text.

    Args:
        text: the text.
        where: where it stands, for the message ("text #3", "line 4 of 'data.jsonl'").
    """
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return (f"Texts must be valid Unicode; {where} holds a lone UTF-16 surrogate "
            f"U+{ord(found.group()):04X} at character {found.start()} (a JSON \\u escape of "
            f"one half of a pair, e.g. \"\\ud83d\" without its low half). Received: "
            f"{text[max(0, found.start() - 20):found.start() + 20]!r}")


def _check_texts(texts: Sequence[str], caller: str) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"{caller} expects a list of texts. Received: {type(texts).__name__} "
                        f"{texts!r:.80}")
    texts = list(texts)
    bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
    if bad is not None:
        raise TypeError(f"{caller} expects every text to be a str. Received: text #{bad} = "
                        f"{type(texts[bad]).__name__} {texts[bad]!r:.80}")
    for index, text in enumerate(texts):
        message = surrogate_message(text, f"text #{index}")
        if message is not None:
            raise ValueError(message)
    return texts


class Tokenizer:
    """A `tokenizers.Tokenizer` with this project's conventions: id 0 is ``"[PAD]"``, ids come
    out as one right-padded int32 matrix, and the file is written atomically.

    Make one with `train_tokenizer` or `load_tokenizer`.

    Args:
        backend: the Hugging Face tokenizer; ``backend.id_to_token(0)`` must be ``"[PAD]"``.

    Example:
        >>> tokenizer = train_tokenizer(["The dog loved the toy."], model="word", vocab_size=20)
        >>> tokenizer.encode_batch(["the dog", "a toy!"], max_len=8).tolist()
        [[2, 4, 0], [1, 6, 1]]
    """

    def __init__(self, backend: tokenizers.Tokenizer) -> None:
        if backend.id_to_token(PAD_ID) != PAD:
            raise ValueError(f"A keras-attn tokenizer needs {PAD!r} at id {PAD_ID}. Received: "
                             f"id {PAD_ID} = {backend.id_to_token(PAD_ID)!r}")
        if type(backend.model) not in _MODEL_NAMES:
            raise ValueError(f"The tokenizer's model must be one of {MODELS}. Received: "
                             f"{type(backend.model).__name__}")
        self.backend = backend

    @property
    def model(self) -> str:
        """The model kind, one of `MODELS`."""
        return _MODEL_NAMES[type(self.backend.model)]

    @property
    def vocab_size(self) -> int:
        """The number of ids, specials included: ids lie in ``[0, vocab_size)``."""
        return self.backend.get_vocab_size()

    def encode_batch(self, texts: Sequence[str], max_len: int | None = None) -> np.ndarray:
        """Encode texts into one right-padded matrix, the model's ``token_ids`` input.

        The width is the longest encoded text, and at least 1: a batch of empty texts gives a
        column of padding rather than a zero-width array, which models cannot take. A row of
        zeros is a text with no token (empty, whitespace or invisible characters only).

        Args:
            texts: a list of texts (not a single str).
            max_len: keep each text's first ``max_len`` tokens; ``None`` keeps them all.

        Returns:
            ``int32 [len(texts), max(1, longest)]``, padded with ``PAD_ID`` (0) on the right.

        Raises:
            TypeError: ``texts`` is not a list of str.
            ValueError: ``max_len`` is not a positive integer or None.
        """
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int)
                                    or max_len < 1):
            raise ValueError(f"max_len must be a positive integer or None. Received: "
                             f"max_len={max_len!r}")
        texts = _check_texts(texts, "encode_batch")
        rows = [encoding.ids[:max_len] for encoding in
                self.backend.encode_batch_fast(texts, add_special_tokens=False)]
        batch = np.full((len(rows), max([1, *map(len, rows)])), PAD_ID, dtype=np.int32)
        for index, row in enumerate(rows):
            batch[index, : len(row)] = row
        return batch

    def token_id(self, token: str) -> int:
        """The id of `token` read as text: what the model sees wherever `token` stands alone
        (after the tokenizer's normalization, e.g. lower-casing), such as the readout token
        of `ModelConfig(pooling="token")`.

        Raises:
            TypeError: `token` is not a str.
            ValueError: `token` does not encode as exactly one known id (none, several, or
                ``[UNK]``).
        """
        if not isinstance(token, str):
            raise TypeError(f"token must be a str. Received: {type(token).__name__}")
        ids = [int(token_id) for token_id in self.encode_batch([token])[0] if token_id != PAD_ID]
        if len(ids) != 1 or self.backend.id_to_token(ids[0]) == UNK:
            raise ValueError(f"{token!r} is not one token of this vocabulary: it encodes as "
                             f"{self.tokens(ids) or 'no token'}. A token of the vocabulary is "
                             f"needed, e.g. a word frequent in the training texts")
        return ids[0]

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """The tokens of ids, readable for display (attention heatmaps); padding is skipped.

        Byte-level pieces are shown as the text they stand for ("é" rather than "Ã©"); a piece
        that holds part of one character's bytes shows as "�".

        Args:
            ids: token ids, e.g. one row of `encode_batch`.

        Returns:
            One str per non-padding id, e.g. ``["the", "play", "##ing", "[UNK]"]``.

        Raises:
            ValueError: an id outside ``[0, vocab_size)``.
        """
        array = as_id_array(ids)
        if array.size and (array.dtype == bool or not np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"Token ids must be integers. Received: dtype {array.dtype}")
        ids = array.reshape(-1).tolist()
        outside = [token_id for token_id in ids if not 0 <= token_id < self.vocab_size]
        if outside:
            raise ValueError(f"Token ids must lie in [0, {self.vocab_size}). Received: "
                             f"{outside[:5]}")
        pieces = [self.backend.id_to_token(token_id) for token_id in ids if token_id != PAD_ID]
        if self.model == "bpe":
            return [self.backend.decoder.decode([piece]) for piece in pieces]
        return pieces

    def to_str(self) -> str:
        """The standard ``tokenizer.json`` text."""
        return self.backend.to_str(pretty=True)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``tokenizer.json`` atomically (a temporary file beside it, then a rename), with
        the mode the umask gives new files.

        Args:
            path: the file to write; its folder must exist.
        """
        path = os.fspath(path)
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(self.to_str())
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    def __repr__(self) -> str:
        return f"Tokenizer(model={self.model!r}, vocab_size={self.vocab_size})"


def train_tokenizer(texts: Sequence[str], model: str = DEFAULT_MODEL,
                    vocab_size: int = DEFAULT_VOCAB_SIZE) -> Tokenizer:
    """Learn a tokenizer from the training texts.

    Args:
        texts: the training split's texts.
        model: one of `MODELS`.
        vocab_size: the vocabulary size to aim for, specials included. A small corpus can give
            fewer; the models that build words from characters (``"wordpiece"``, ``"unigram"``)
            keep every character they saw, and ``"bpe"`` every byte, even beyond it.

    Returns:
        The trained `Tokenizer`.

    Raises:
        ValueError: an unknown ``model``, ``vocab_size`` < 3, no text has any token, or a
            ``"unigram"`` vocabulary too small for the texts' characters.
        TypeError: ``texts`` is not a list of str.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}. Received: model={model!r}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 3:
        raise ValueError("vocab_size must be an integer >= 3 (the specials and at least one "
                         f"token). Received: vocab_size={vocab_size!r}")
    texts = _check_texts(texts, "train_tokenizer")
    if not any(_words(text) for text in texts):
        raise ValueError("train_tokenizer found no tokens: every text is empty, whitespace or "
                         f"invisible characters. Received: {len(texts)} text(s)")
    backend_model, trainer = _model_and_trainer(model, vocab_size, texts)
    backend = tokenizers.Tokenizer(backend_model)
    backend.normalizer = _normalizer()
    backend.pre_tokenizer = _pre_tokenizer(byte_level=model == "bpe")
    backend.decoder = {"wordpiece": decoders.WordPiece(), "bpe": decoders.ByteLevel()}.get(model)
    try:
        backend.train_from_iterator(texts, trainer, length=len(texts))
    except Exception as error:  # the Rust trainer raises a bare Exception
        if model != "unigram" or "not large enough" not in str(error):
            raise
        characters = {character for text in texts for word, _ in _words(text)
                      for character in word}
        raise ValueError(
            f"vocab_size {vocab_size} is too small for the unigram tokenizer on these texts: "
            f"it must hold each of the {len(characters)} characters they use. Expected "
            f"vocab_size >= {len(characters)}. Received: vocab_size={vocab_size}") from None
    # The trainer also registers the specials as "added tokens", which are matched in raw text
    # before normalization: "[PAD]" typed in a text would become id 0. Keeping them as plain
    # vocabulary entries makes them unreachable from text.
    document = json.loads(backend.to_str())
    document["added_tokens"] = []
    return Tokenizer(tokenizers.Tokenizer.from_str(json.dumps(document)))


def vocab_size_note(tokenizer: Tokenizer, asked: int, model: str) -> str | None:
    """One line saying why a trained vocabulary is not the size asked for, or None when it is.

    A character-building model ("wordpiece", "unigram") keeps every character it saw and
    "bpe" every byte, so it can come out larger than asked; any model comes out smaller when
    the texts hold fewer words or pieces than asked for.

    Args:
        tokenizer: what `train_tokenizer` returned.
        asked: the `vocab_size` it was given.
        model: the `model` it was given.
    """
    got = tokenizer.vocab_size
    if got == asked:
        return None
    said = (f"vocab_size {asked} (--vocab-size) was asked for; the {model} tokenizer has "
            f"{got} entries")
    if got > asked:
        kept = {"wordpiece": "every character it saw, alone and inside a word (##x)",
                "unigram": "every character it saw", "bpe": "all 256 bytes"}.get(model, "")
        return (f"{said}: it keeps {kept} and its special tokens, so on these texts it cannot be "
                "smaller")
    unit = "distinct words" if model == "word" else "pieces"
    return f"{said}: the training texts yield no more {unit} than that"


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Read a ``tokenizer.json`` written by `Tokenizer.save`.

    Args:
        path: the file.

    Returns:
        The `Tokenizer`.

    Raises:
        ValueError: the file is not a tokenizer this project wrote, saying what is wrong; a file
            in the old keras-attn word format (before Hugging Face `tokenizers`) says how to
            make a new run.
    """
    source = f"tokenizer file {os.fspath(path)!r}"
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        text = data.decode("utf-8")
        document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"Malformed {source}: not UTF-8 JSON ({error})") from None
    if isinstance(document, dict) and document.get("format") == LEGACY_FORMAT:
        raise ValueError(
            f"The {source} was written by keras-attn's old word tokenizer (format "
            f"{LEGACY_FORMAT!r}), which this version no longer reads: its model was trained on "
            "that tokenizer's ids. Train the model again with this version (`keras-attn train "
            "DATA --out RUNS`), then export the new run (`keras-attn export RUN_DIR --out "
            "saved_models/NAME`); or keep serving the old export with keras-attn 0.1.0."
        )
    try:
        backend = tokenizers.Tokenizer.from_str(text)
    except Exception as error:  # tokenizers raises its own Exception subclass
        raise ValueError(f"Malformed {source}: not a Hugging Face tokenizer ({error})") from None
    for setting, value in (("truncation", backend.truncation), ("padding", backend.padding)):
        # `encode_batch` would apply them: other ids than the model was trained on, and answers
        # that only `keras-attn verify` would catch (issue 19 case 3).
        if value is not None:
            raise ValueError(
                f"The {source} sets {setting} ({json.dumps(value, default=str)[:120]}), which "
                f"keras-attn never writes: it truncates to max_len and pads with id 0 itself, "
                f"and the model was trained on ids made without it. The file was changed after "
                f"export (another tool re-saved it?): set \"{setting}\" back to null, or export "
                f"the run again.")
    try:
        return Tokenizer(backend)
    except ValueError as error:
        raise ValueError(f"Malformed {source}: {error}") from None
