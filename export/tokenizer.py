"""A word tokenizer shared by training (Keras) and serving (onnxruntime).

Text becomes token ids in three steps, the same at training and at serving time:

1. Normalise: Unicode NFKC, then ``str.casefold`` (a stronger, language-aware lowercasing:
   "Straße" -> "strasse"), then NFKC again, because casefolding can un-normalise a few
   characters. Invisible format and control characters (zero-width joiners, soft hyphens, the
   byte order mark, emoji variation selectors) are removed.
2. Split: a word is a run of letters, digits and combining marks ("naïve", "नमस्ते", "42").
   Every other visible character (punctuation, symbols, emoji) is a token of its own, and each
   CJK ideograph is a token of its own because those scripts do not put spaces between words.
   Whitespace only separates tokens.
3. Look up: id 0 is padding ("[PAD]"), id 1 is any word missing from the vocabulary ("[UNK]").

The character classes come from the running Python's Unicode tables (built in
`export.unicode_classes`); a saved tokenizer records their version, and loading it where the
version differs warns that some text may split differently.

This module imports only the standard library and numpy: the serving path must never load
TensorFlow or Keras.
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from export.unicode_classes import token_patterns

FORMAT = "keras-attn-tokenizer"
FORMAT_VERSION = 1


def _check_max_len(max_len: int | None) -> None:
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int)
                                or max_len < 1):
        raise ValueError(
            f"max_len must be a positive integer or None. Received: max_len={max_len!r}"
        )


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"Expected text as a str. Received: {type(text).__name__} {text!r:.80}")
    return text


class Tokenizer:
    """Maps text to token ids and back with a fixed word vocabulary.

    Args:
        vocabulary: the tokens, index = id. ``vocabulary[0]`` must be ``"[PAD]"`` and
            ``vocabulary[1]`` ``"[UNK]"``; every other entry must be one normalised token
            (as ``split`` yields it), so that it can be reached from text.

    Example:
        >>> tokenizer = Tokenizer.fit(["The dog loved the toy, it was very excited."], 20)
        >>> tokenizer.split("The DOG!")
        ['the', 'dog', '!']
        >>> tokenizer.encode_batch(["the dog", "a toy"], max_len=8).tolist()
        [[2, 5], [1, 9]]
    """

    PAD = "[PAD]"
    UNK = "[UNK]"
    PAD_ID = 0
    UNK_ID = 1

    def __init__(self, vocabulary: Sequence[str]) -> None:
        vocabulary = list(vocabulary)
        if vocabulary[:2] != [self.PAD, self.UNK]:
            raise ValueError(
                f"vocabulary must start with {self.PAD!r} (id 0) and {self.UNK!r} (id 1). "
                f"Received: {vocabulary[:2]!r}"
            )
        not_str = [token for token in vocabulary if not isinstance(token, str)]
        if not_str:
            raise ValueError(f"Every vocabulary entry must be a str. Received: {not_str[:5]!r}")
        duplicates = sorted(token for token, count in Counter(vocabulary).items() if count > 1)
        if duplicates:
            raise ValueError(
                f"vocabulary entries must be unique. Received duplicates: {duplicates[:10]!r}"
            )
        unreachable = [token for token in vocabulary[2:] if self.split(token) != [token]]
        if unreachable:
            raise ValueError(
                "Every vocabulary entry after the two specials must be a single normalised "
                "token (casefolded, NFKC, no spaces, punctuation alone). "
                f"Received: {unreachable[:10]!r}"
            )
        self._vocabulary = vocabulary
        self._ids = {token: index for index, token in enumerate(vocabulary)}

    @classmethod
    def fit(cls, texts: Iterable[str], max_vocab: int) -> Tokenizer:
        """Build the vocabulary from the most frequent tokens of a corpus (the training split).

        Ties in frequency are broken alphabetically (by code point), so the vocabulary does not
        depend on the order of the texts.

        Args:
            texts: the training texts.
            max_vocab: the most entries in the vocabulary, the two specials included (>= 3).

        Returns:
            A ``Tokenizer`` with ``min(max_vocab, 2 + distinct tokens)`` entries.
        """
        if isinstance(max_vocab, bool) or not isinstance(max_vocab, int) or max_vocab < 3:
            raise ValueError(
                "max_vocab must be an integer >= 3 (the two specials and at least one word). "
                f"Received: max_vocab={max_vocab!r}"
            )
        if isinstance(texts, str):
            raise TypeError("fit expects a list of texts, not one str. Received: a str")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(cls.split(text))
        if not counts:
            raise ValueError("fit found no tokens: every text is empty or whitespace-only.")
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls([cls.PAD, cls.UNK, *(token for token, _ in ranked[: max_vocab - 2])])

    @staticmethod
    def split(text: str) -> list[str]:
        """Normalise text and split it into tokens (see the module docstring for the rules).

        Args:
            text: any str; empty and whitespace-only strings give ``[]``.

        Returns:
            The tokens, in order.
        """
        invisible, token = token_patterns()
        text = invisible.sub("", unicodedata.normalize("NFKC", _check_text(text)))
        text = unicodedata.normalize("NFKC", text.casefold())
        return token.findall(text)

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        """Turn one text into token ids; words missing from the vocabulary become ``UNK_ID``.

        Args:
            text: the text.
            max_len: keep only the first ``max_len`` tokens; ``None`` keeps them all.

        Returns:
            One id per token (never ``PAD_ID``), at most ``max_len`` of them.
        """
        _check_max_len(max_len)
        tokens = self.split(text)[:max_len]
        return [self._ids.get(token, self.UNK_ID) for token in tokens]

    def encode_batch(self, texts: Sequence[str], max_len: int | None = None) -> np.ndarray:
        """Encode texts into one right-padded int32 matrix, the model's ``token_ids`` input.

        The width is the longest encoded text, and at least 1: a batch of empty texts gives a
        column of padding rather than a zero-width array, which models cannot take.

        Args:
            texts: a list of texts (not a single str).
            max_len: truncate every text to this many tokens; ``None`` keeps them all.

        Returns:
            ``int32 [len(texts), max(1, longest)]``, padded with ``PAD_ID`` on the right.
        """
        if isinstance(texts, str):
            raise TypeError(f"encode_batch expects a list of texts. Received: a str {texts!r:.80}")
        rows = [self.encode(text, max_len) for text in texts]
        batch = np.full((len(rows), max([1, *map(len, rows)])), self.PAD_ID, dtype=np.int32)
        for index, row in enumerate(rows):
            batch[index, : len(row)] = row
        return batch

    def decode(self, ids: Iterable[int]) -> str:
        """Turn ids back into normalised tokens joined by single spaces; padding is skipped.

        Args:
            ids: token ids, e.g. one row of ``encode_batch``.

        Returns:
            The text, e.g. ``"the dog [UNK] !"``. Case and original spacing are not restored.
        """
        tokens = []
        for token_id in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            if not 0 <= token_id < self.vocab_size:
                raise ValueError(
                    f"Token ids must lie in [0, {self.vocab_size}). Received: {token_id}"
                )
            if token_id != self.PAD_ID:
                tokens.append(self._vocabulary[token_id])
        return " ".join(tokens)

    @property
    def vocab_size(self) -> int:
        """The number of ids, specials included: ids lie in ``[0, vocab_size)``."""
        return len(self._vocabulary)

    @property
    def vocabulary(self) -> list[str]:
        """A copy of the vocabulary, index = id."""
        return list(self._vocabulary)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tokenizer):
            return NotImplemented
        return self._vocabulary == other._vocabulary

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size})"

    def to_json(self) -> str:
        """Serialise to a JSON document with a format name and version.

        Returns:
            The JSON text; ``Tokenizer.from_json`` reads it back.
        """
        document = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "normalization": "nfkc-casefold-nfkc",
                    "unicode_version": unicodedata.unidata_version,
                    "vocabulary": self._vocabulary}
        return json.dumps(document, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """Read a tokenizer back from ``to_json`` output.

        Args:
            text: the JSON text.

        Returns:
            The tokenizer. A malformed document raises ``ValueError`` saying what is wrong.
        """
        return cls._parse(text, source="tokenizer JSON")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer to a UTF-8 JSON file, atomically (a temporary file, then rename).

        Args:
            path: the file to write; its folder must exist.
        """
        descriptor, temporary = tempfile.mkstemp(suffix=".tmp",
                                                 dir=os.path.dirname(os.path.abspath(path)))
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(self.to_json())
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Read a tokenizer written by ``save``.

        Args:
            path: the JSON file.

        Returns:
            The tokenizer. A file that is not a valid tokenizer raises ``ValueError`` naming it.
        """
        with open(path, "rb") as handle:
            data = handle.read()
        source = f"tokenizer file {os.fspath(path)!r}"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"Malformed {source}: not UTF-8 ({error})") from None
        return cls._parse(text, source)

    @classmethod
    def _parse(cls, text: str, source: str) -> Tokenizer:
        def malformed(reason: str) -> ValueError:
            return ValueError(f"Malformed {source}: {reason}")

        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise malformed(f"not valid JSON ({error})") from None
        if not isinstance(document, dict):
            raise malformed(f"expected a JSON object. Received: {type(document).__name__}")
        if document.get("format") != FORMAT or document.get("format_version") != FORMAT_VERSION:
            raise malformed(
                f"expected format {FORMAT!r} version {FORMAT_VERSION}. Received: format="
                f"{document.get('format')!r}, format_version={document.get('format_version')!r}"
            )
        vocabulary = document.get("vocabulary")
        if not isinstance(vocabulary, list):
            raise malformed(f"'vocabulary' must be a list. Received: {type(vocabulary).__name__}")
        try:
            tokenizer = cls(vocabulary)
        except ValueError as error:
            raise malformed(str(error)) from None
        _warn_on_unicode_mismatch(document.get("unicode_version"), source)
        return tokenizer


def _warn_on_unicode_mismatch(saved: object, source: str) -> None:
    """Warns when the saved Unicode version differs from this Python's. Files written before
    the version was recorded carry none and load silently."""
    if saved is not None and saved != unicodedata.unidata_version:
        warnings.warn(
            f"The {source} was saved with Unicode {saved}, but this Python uses Unicode "
            f"{unicodedata.unidata_version}: text may split differently than at training "
            "time (characters new to one version change class).",
            UserWarning,
            stacklevel=4,  # the caller of Tokenizer.load / from_json
        )
