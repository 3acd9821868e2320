"""The attention viewer as one self-contained HTML file: every script, style and data point
inline, no URL outside the page (its Content-Security-Policy allows none), so it opens offline
and from a file.

Two views, after bertviz's (Vig, 2019, "A Multiscale Visualization of Attention in the
Transformer Model"), drawn on canvas so that a text of `max_len` tokens stays responsive:

- the head view: the tokens in two columns, joined by lines whose opacity is the attention
  weight, one colour per head; hovering a token keeps only its lines;
- the model view: a grid of blocks x heads, each a heatmap; clicking one opens it.

The page reads one *attention document* (`attention_document`), the JSON that
`POST /v2/models/NAME/attention` also answers:

    {"model_name": str, "model_version": str | null, "text": str | null,
     "tokens": [str, ...] (n),                       # as the tokenizer splits the text
     "attentions": [[[[float]]]]}                    # [blocks][heads][n][n], rows sum to 1

Padding is never in it: `tokens` and every row and column are the text's real tokens only.
Standard library and numpy only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np

TEMPLATE_NAME = "attention_viewer.html"
DATA_PLACEHOLDER = "/*ATTENTION_DATA*/"
SCRIPT_HASH_PLACEHOLDER = "/*SCRIPT_HASH*/"
DECIMALS = 4  # weights in the document: 1e-4 is below what a line's opacity can show


def attention_document(tokens: Sequence[str], attentions: Sequence[Any], model_name: str,
                       model_version: str | int | None = None,
                       text: str | None = None) -> dict[str, Any]:
    """The viewer's data for one text.

    Args:
        tokens: the text's n tokens, padding left out (`Tokenizer.tokens`).
        attentions: one array per block, `[heads, m, m]` float with m >= n (padding after
            the n tokens is cut off); each row sums to 1.
        model_name: shown on the page.
        model_version: shown on the page, when it is an export's version.
        text: the text the tokens came from.

    Returns:
        The attention document (module docstring), weights rounded to 4 decimals.

    Raises:
        ValueError: no token, no block, blocks of other shapes than `[heads, m, m]` with
            m >= n, blocks with different head counts, or weights that are not finite.
    """
    tokens = [str(token) for token in tokens]
    n = len(tokens)
    if n == 0 or not attentions:
        raise ValueError(f"Expected at least one token and one block. Received: {n} tokens, "
                         f"{len(attentions)} blocks")
    blocks = []
    for index, block in enumerate(attentions):
        weights = np.asarray(block, dtype=np.float64)
        if (weights.ndim != 3 or weights.shape[1] != weights.shape[2]
                or weights.shape[1] < n or weights.shape[0] < 1):
            raise ValueError(f"Expected each block's weights as [heads, m, m] with m >= the "
                             f"{n} tokens. Received: block {index} of shape {weights.shape}")
        if blocks and weights.shape[0] != len(blocks[0]):
            raise ValueError(f"Expected every block to have {len(blocks[0])} heads. Received: "
                             f"block {index} with {weights.shape[0]}")
        weights = weights[:, :n, :n]
        if not np.isfinite(weights).all():
            raise ValueError(f"Expected finite attention weights. Received: block {index} "
                             "holds NaN or infinity")
        blocks.append(np.round(weights, DECIMALS).tolist())
    return {"model_name": str(model_name),
            "model_version": None if model_version is None else str(model_version),
            "text": text, "tokens": tokens, "attentions": blocks}


def render_html(document: dict[str, Any]) -> str:
    """The viewer page with `document` (`attention_document`) inline: a file that opens
    offline."""
    return _page(document)


def explorer_html(model_name: str, attention_url: str, text: str = "") -> str:
    """The served viewer page: a text box whose text is POSTed as `{"text": ...}` to
    `attention_url` (same origin), the attention document it answers drawn; an error answer
    (`{"error": message}`) is shown on the page."""
    return _page({"model_name": model_name, "attention_url": attention_url, "text": text})


def _page(config: dict[str, Any]) -> str:
    return _template().replace(DATA_PLACEHOLDER, _script_json(config), 1)


@functools.cache
def _template() -> str:
    """The page with its script's hash in the CSP; read once per process (the script does not
    depend on the data, which sits in a JSON <script> the browser does not run)."""
    template = resources.files(__package__).joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")
    return template.replace(SCRIPT_HASH_PLACEHOLDER, _script_hash(template), 1)


def _script_hash(page: str) -> str:
    """The CSP source of the page's one executable script, 'sha256-<base64>' (CSP Level 2,
    "hash-source"): the browser runs that script and no other, inline or injected."""
    scripts = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    if len(scripts) != 1:
        raise RuntimeError(f"{TEMPLATE_NAME} must hold exactly one executable <script>; it "
                           f"holds {len(scripts)}")
    digest = hashlib.sha256(scripts[0].encode("utf-8")).digest()
    return f"sha256-{base64.b64encode(digest).decode('ascii')}"


def _script_json(value: Any) -> str:
    """JSON that is safe inside <script>: no "</script>", "<!--" or U+2028/9 can end or bend
    it (every "<", ">", "&" escaped, as Django's json_script does), and ASCII only, so a lone
    surrogate from a JSON request is escaped rather than unencodable."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


