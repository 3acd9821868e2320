"""The Unicode character classes the tokenizer splits text with, built from Python's tables.

Three classes, each compiled into a regular expression once, on first use:

- word characters: letters, digits and combining marks (Unicode major classes L, N and M),
  less the CJK ideographs and the variation selectors;
- CJK ideographs: each is a token of its own, since those scripts put no spaces between words;
- invisible characters, removed before splitting: controls, format characters (zero-width
  joiners, soft hyphens, the byte order mark) and surrogates, plus the variation selectors,
  but never whitespace such as "\\t" and "\\n", which separates tokens.

The classes follow `unicodedata.unidata_version` of the running Python: a newer Unicode
version can make an unassigned code point a letter, which changes how some text splits.
Standard library and numpy only, like the tokenizer that uses it.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

import numpy as np

# CJK ideograph blocks: URO, Ext A, compatibility ideographs, Ext B-F + compat supplement, Ext G-H.
CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
              (0x20000, 0x2FA1F), (0x30000, 0x323AF))
# Variation selectors only choose how the previous character is drawn (text or emoji style).
VARIATION_SELECTORS = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF))


def character_class(code_points: np.ndarray) -> str:
    """Write sorted code points as a regex character class of ranges, e.g. ``[a-z0-9]``."""
    breaks = np.flatnonzero(np.diff(code_points) != 1)
    starts = [code_points[0], *code_points[breaks + 1]]
    ends = [*code_points[breaks], code_points[-1]]
    return "[" + "".join(f"{re.escape(chr(low))}-{re.escape(chr(high))}"
                         for low, high in zip(starts, ends, strict=True)) + "]"


@functools.cache
def token_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Build (invisible characters to remove, token pattern) once, from the Unicode tables.

    The token pattern matches one CJK ideograph, one run of word characters, or any other
    single visible character. Scanning every code point takes ~0.3 s, so it happens on first
    use, not at import.
    """
    categories = np.array([unicodedata.category(chr(c)) for c in range(sys.maxunicode + 1)])
    word = np.isin(categories.view("U1")[::2], ["L", "N", "M"])  # the major class, e.g. "L"
    invisible = np.isin(categories, ["Cc", "Cf", "Cs"])
    invisible[[c for c in np.flatnonzero(invisible) if chr(c).isspace()]] = False  # "\t", "\n"
    cjk = np.zeros_like(word)
    for low, high in VARIATION_SELECTORS:
        word[low : high + 1], invisible[low : high + 1] = False, True
    for low, high in CJK_RANGES:
        word[low : high + 1], cjk[low : high + 1] = False, True
    code_points = np.arange(len(categories))
    bmp_word = character_class(np.flatnonzero(word & (code_points < 0x10000)))
    astral_word = character_class(np.flatnonzero(word & (code_points >= 0x10000)))
    # re tests a class of BMP characters with a bitmap but scans a class of astral-plane ranges
    # one by one, so the look-ahead keeps that scan off the common BMP characters.
    word_run = f"(?:{bmp_word}+|(?=[\\U00010000-\\U0010ffff]){astral_word})+"
    token = re.compile(f"{character_class(np.flatnonzero(cjk))}|{word_run}|\\S")
    return re.compile(character_class(np.flatnonzero(invisible))), token
