"""Real labelled text, written by people, read from Debian's fortune packages (no download).

Debian's `fortunes-*` packages install fortune cookies (quotations, proverbs, jokes, poems) as
plain UTF-8 files under /usr/share/games/fortunes, one cookie after another, separated by lines
holding a single "%". Two corpora come out of them:

- `fortune_languages`: language identification, 12 classes, one per package language;
- `fortune_topics`: English topic classification, 8 classes, one per file of the `fortunes`
  package ("computers", "food", "law", ...).

Each class names the Debian package it comes from, so that a missing one is reported with the
command that installs it. Licences, from each package's /usr/share/doc/<package>/copyright:
`fortunes` (English) and `fortunes-ga` BSD; `fortunes-it` public domain; `fortunes-es` texts
presumed public domain (package GPL-2+); `fortunes-de`, `fortunes-pl`, `fortunes-br` GPL-2+;
`fortunes-ru` GPL-2; `fortunes-bg` GPL-1+; `fortunes-cs`, `fortunes-zh` GPL-3+; `fortunes-eo`
the GPL (in its Esperanto translation). The small samples committed for tests live in
tests/fixtures/, with a README naming sources and licences.

Example:
    >>> from keras_attn.data.corpora import fortune_languages
    >>> data = fortune_languages(max_per_class=600)   # needs `apt-get install fortunes-de ...`
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from keras_attn.data.records import TextDataset

FORTUNES_DIR = Path("/usr/share/games/fortunes")
ENGLISH_TOPICS = ("computers", "education", "food", "law", "love", "politics", "science",
                  "sports")


@dataclasses.dataclass(frozen=True)
class Source:
    """Where one class's texts live: a Debian package and file patterns under FORTUNES_DIR."""

    package: str
    patterns: tuple[str, ...]
    exclude: tuple[str, ...] = ()


LANGUAGES: Mapping[str, Source] = {
    "bg": Source("fortunes-bg", ("bg/*",)),
    "cs": Source("fortunes-cs", ("cs/*",), exclude=("cs/klasik-sk",)),  # Slovak classics
    "de": Source("fortunes-de", ("de/*",)),
    "en": Source("fortunes", ("fortunes", "literature", "wisdom", "people", *ENGLISH_TOPICS)),
    "eo": Source("fortunes-eo", ("eo/*",)),
    "es": Source("fortunes-es", ("es/*.fortunes",)),
    "ga": Source("fortunes-ga", ("ga/*",)),
    "it": Source("fortunes-it", ("it/*",)),
    "pl": Source("fortunes-pl", ("pl/*",)),
    "pt": Source("fortunes-br", ("brasil",)),
    "ru": Source("fortunes-ru", ("ru/*",)),
    "zh": Source("fortunes-zh", ("chinese", "song100", "tang300")),
}
TOPICS: Mapping[str, Source] = {topic: Source("fortunes", (topic,)) for topic in ENGLISH_TOPICS}


class CorpusNotInstalledError(FileNotFoundError):
    """A corpus needs a Debian package that is not installed."""


def read_fortunes(path: str | Path) -> list[str]:
    """The cookies of one fortune file: the texts between lines holding a single "%", stripped.

    Args:
        path: a fortune file (UTF-8).

    Returns:
        The non-empty cookies, in file order.
    """
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return [cookie.strip() for cookie in re.split(r"^%[ \t]*$", text, flags=re.MULTILINE)
            if cookie.strip()]


def fortune_languages(max_per_class: int = 600, min_chars: int = 20, max_chars: int = 500,
                      seed: int = 0, root: str | Path = FORTUNES_DIR) -> TextDataset:
    """Language identification: fortune cookies in 12 languages, labelled by language.

    Args:
        max_per_class: the most texts kept per language (a seeded sample).
        min_chars, max_chars: keep cookies of this many characters (drops one-word lines and
            long ASCII-art pieces).
        seed: the sample's seed; the same seed gives the same corpus.
        root: the folder the packages install into.

    Returns:
        A `TextDataset` with class names ``list(LANGUAGES)`` (ISO 639-1 codes, sorted).

    Raises:
        CorpusNotInstalledError: a package is missing; the message gives the apt-get command.
    """
    return load_corpus(LANGUAGES, max_per_class, min_chars, max_chars, seed, root)


def fortune_topics(max_per_class: int = 300, min_chars: int = 20, max_chars: int = 500,
                   seed: int = 0, root: str | Path = FORTUNES_DIR) -> TextDataset:
    """English topic classification: the `fortunes` package's cookies, labelled by file.

    Args and Raises: as `fortune_languages`.

    Returns:
        A `TextDataset` with class names ``ENGLISH_TOPICS``.
    """
    return load_corpus(TOPICS, max_per_class, min_chars, max_chars, seed, root)


def load_corpus(sources: Mapping[str, Source], max_per_class: int, min_chars: int,
                max_chars: int, seed: int, root: str | Path = FORTUNES_DIR) -> TextDataset:
    """Read each class's files, keep texts of the right length that no other class also has,
    and sample at most ``max_per_class`` of each with ``seed``.

    Raises:
        CorpusNotInstalledError: a class has no file; names the apt packages to install.
    """
    root = Path(root)
    files = {label: _files(root, source) for label, source in sources.items()}
    missing = sorted({sources[label].package for label, found in files.items() if not found})
    if missing:
        raise CorpusNotInstalledError(
            f"The corpus reads Debian's fortune packages, and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed (no files under {root}). "
            f"Install with: sudo apt-get install {' '.join(missing)}"
        )
    texts = {label: {text for path in paths for text in read_fortunes(path)
                     if min_chars <= len(text) <= max_chars}
             for label, paths in files.items()}
    seen_in: dict[str, int] = {}
    for found in texts.values():
        for text in found:
            seen_in[text] = seen_in.get(text, 0) + 1
    rng = np.random.default_rng(seed)
    class_names = list(sources)
    kept_texts, labels = [], []
    for label, name in enumerate(class_names):
        unique = sorted(text for text in texts[name] if seen_in[text] == 1)
        chosen = rng.permutation(len(unique))[:max_per_class]
        kept_texts += [unique[i] for i in sorted(chosen)]
        labels += [label] * len(chosen)
    return TextDataset(kept_texts, np.array(labels), class_names)


def _files(root: Path, source: Source) -> list[Path]:
    excluded = {root / name for name in source.exclude}
    return sorted({path for pattern in source.patterns for path in root.glob(pattern)
                   if path.is_file() and path.suffix not in (".dat", ".u8")
                   and path not in excluded})


def write_jsonl(dataset: TextDataset, path: str | Path) -> None:
    """Write ``{"text", "label"}`` lines, the format `keras-attn train --data` reads."""
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for text, label in zip(dataset.texts, dataset.labels, strict=True):
            record = {"text": text, "label": dataset.class_names[label]}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
