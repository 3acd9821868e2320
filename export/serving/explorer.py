"""The attention viewer, served: `GET /explore/NAME[/versions/N]` answers the page
(`export.viewer.attention_page.explorer_html`), and the page POSTs what a person types to

    POST /v2/models/NAME[/versions/N]/attention     {"text": "the dog ..."}

which answers the attention document of `export.viewer.attention_page` from the version's
attention.onnx in onnxruntime: the text's tokens (as the export's tokenizer splits them) and
every block's weights `[heads, n, n]`. Errors are the server's usual ones: 400 for a body that
is not `{"text": str}` or a text the tokenizer or the id checks refuse (the same messages as
/infer), 404 for an unknown model or version, or a version without attention.onnx (saying
why). NumPy, onnxruntime, `tokenizers` and the standard library only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from export.serving.repository import BadRequestError, ServedVersion, describe, parsed_json
from export.viewer.attention_page import attention_document, explorer_html

ATTENTION_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string", "minLength": 1}},
    "additionalProperties": False,
}


def parse_attention_request(body: bytes) -> str:
    """The text of an attention request body.

    Raises:
        BadRequestError: the body is not UTF-8 JSON, not an object, has other keys than
            "text", or its text is not a non-empty string.
    """
    document = parsed_json(body)
    if not isinstance(document, dict) or set(document) != {"text"}:
        keys = sorted(document) if isinstance(document, dict) else None
        raise BadRequestError('Expected a JSON object with one key, "text". Received: '
                              + (f"keys {keys}" if keys is not None else describe(document)))
    text = document["text"]
    if not isinstance(text, str) or not text:
        raise BadRequestError(f'Expected "text" to be a non-empty string. Received: '
                              f"{describe(text)}")
    return text


def attention_answer(name: str, served: ServedVersion, text: str) -> dict[str, Any]:
    """The attention document of `text` on `served` (runs onnxruntime: call it off the event
    loop).

    Raises:
        BadRequestError: as `ServedVersion.token_ids` raises it for `{"text": [text]}`.
        NotFoundError: the version has no attention.onnx.
    """
    tokens, maps = served.attention(text)
    return attention_document(tokens, maps, name, served.version, text)


def explorer_page(name: str, version: str | None = None) -> str:
    """The served viewer page for model `name` (and `version`, default the latest)."""
    path = f"/v2/models/{quote(name, safe='')}"
    if version is not None:
        path += f"/versions/{quote(version, safe='')}"
    return explorer_html(name, path + "/attention")
