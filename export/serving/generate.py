"""Generation served: Triton's generate extension for a language model's versions.

    POST /v2/models/NAME[/versions/N]/generate          one JSON answer
    POST /v2/models/NAME[/versions/N]/generate_stream   server-sent events, one per token

The request is a JSON object, as Triton's generate extension takes it
(triton-inference-server/server docs/protocol/extension_generate.md): `text_input` (the
prompt), and the sampling settings, at the top level or under "parameters" (not both):

    max_tokens   int >= 0      new tokens at most (default 16)
    temperature  number >= 0   0 is greedy (the default)
    top_k        int >= 1      with temperature > 0
    top_p        (0, 1]        with temperature > 0
    seed         int >= 0      the same seed gives the same tokens
    repetition_penalty    > 0     CTRL's penalty on ids already in the text (1: none)
    no_repeat_ngram_size  >= 0    never repeat an n-gram of the text (0: off)

The answer is `{"model_name", "model_version", "text_output", "stop_reason", "message"}`
(`stop_reason`: "max_tokens", "max_len" or "end_of_text");
`text_output` is the continuation, the same text `keras-attn generate` prints after the prompt
for the same export (the same loop, `export.runtime.sampling.decode_ids`, on the same ONNX
decoder). A stream sends `data: {"model_name", "model_version", "text_output"}` for every
token, then one last event with an empty `text_output` and the `stop_reason` and `message`.

Each token is decoded in a worker thread, so streams do not block each other, the event loop
or the classifier routes; a client that hangs up mid-stream stops its decoding at the next
token (Starlette cancels the response, and the decoding generator is closed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

from export.runtime.sampling import (
    Generation,
    continuation_text,
    decode_ids,
    end_of_text_id,
    next_id,
    prompt_token_ids,
)
from export.serving.repository import BadRequestError, ServedVersion, describe, parsed_json

DEFAULT_MAX_TOKENS = 16
SAMPLING = ("max_tokens", "temperature", "top_k", "top_p", "seed", "repetition_penalty",
            "no_repeat_ngram_size")
_NUMBER = {"type": "number"}
GENERATE_REQUEST_SCHEMA: dict[str, Any] = {  # for the app's OpenAPI document
    "type": "object",
    "required": ["text_input"],
    "properties": {
        "text_input": {"type": "string"},
        "max_tokens": {"type": "integer", "minimum": 0},
        "temperature": {**_NUMBER, "minimum": 0},
        "top_k": {"type": "integer", "minimum": 1},
        "top_p": {**_NUMBER, "exclusiveMinimum": 0, "maximum": 1},
        "seed": {"type": "integer", "minimum": 0},
        "repetition_penalty": {**_NUMBER, "exclusiveMinimum": 0},
        "no_repeat_ngram_size": {"type": "integer", "minimum": 0},
        "parameters": {"type": "object"},
    },
}


@dataclasses.dataclass(frozen=True)
class GenerateRequest:
    """A parsed generate request: the prompt and `export.runtime.sampling`'s settings."""

    text_input: str
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0


def parse_generate_request(body: bytes) -> GenerateRequest:
    """Parses a generate request body.

    Raises:
        BadRequestError: not a UTF-8 JSON object, a missing or non-string `text_input`, an
            unknown key, a setting given twice (top level and "parameters"), or a setting
            out of range (`export.runtime.sampling.check_sampling`'s message).
    """
    document = parsed_json(body)
    if not isinstance(document, dict):
        raise BadRequestError(f"Expected a JSON object {{\"text_input\": str, ...}}. "
                              f"Received: {describe(document)}")
    parameters = document.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequestError(f'"parameters" must be a JSON object. Received: '
                              f"{describe(parameters)}")
    allowed = ("text_input", *SAMPLING, "parameters")
    unknown = sorted(set(document) - set(allowed)) + sorted(
        f"parameters.{key}" for key in set(parameters) - set(SAMPLING))
    if unknown:
        raise BadRequestError(f"Unknown key(s) {unknown}; a generate request takes "
                              f"{list(allowed)}, the sampling settings {list(SAMPLING)} at the "
                              f"top level or under \"parameters\". Received: {unknown}")
    twice = sorted(set(document) & set(parameters))
    if twice:
        raise BadRequestError(f"Give each setting once, at the top level or under "
                              f"\"parameters\". Received: {twice} in both")
    text = document.get("text_input")
    if not isinstance(text, str):
        raise BadRequestError(f'Expected "text_input" to be a string, the prompt. Received: '
                              f"{describe(text)}")
    settings = {**{key: document[key] for key in SAMPLING if key in document}, **parameters}
    request = GenerateRequest(text, **settings)
    from export.runtime.sampling import check_sampling

    try:
        check_sampling(request.max_tokens, request.temperature, request.top_k, request.top_p,
                       request.seed, request.repetition_penalty, request.no_repeat_ngram_size)
    except ValueError as error:
        raise BadRequestError(str(error).replace("max_new_tokens", "max_tokens")) from None
    return request


@dataclasses.dataclass
class Decoding:
    """One request's decoding: the generator of new ids, and how to turn them into text."""

    ids: Generator[int, None, Generation]
    text_of: Callable[[list[int]], str]  # new ids -> the continuation's text


def start_decoding(served: ServedVersion, request: GenerateRequest) -> Decoding:
    """Tokenizes the prompt and sets the decoding up; nothing is decoded yet.

    Raises:
        BadRequestError: the version is not a language model, the prompt is not valid
            Unicode or does not fit in max_len.
        UnavailableError: the decoder cannot be loaded.
    """
    step = served.decoder_step()
    tokenizer = served.tokenizer
    try:
        prompt_ids = prompt_token_ids(tokenizer, request.text_input)
        ids = decode_ids(step, step.empty_cache(), prompt_ids, step.max_len,
                         end_of_text_id(step.vocab_size, tokenizer.vocab_size),
                         request.max_tokens, request.temperature, request.top_k, request.top_p,
                         request.seed, repetition_penalty=request.repetition_penalty,
                         no_repeat_ngram_size=request.no_repeat_ngram_size)
    except ValueError as error:
        raise BadRequestError(str(error)) from None
    return Decoding(ids, lambda new_ids: continuation_text(tokenizer, prompt_ids, new_ids))


def generate_answer(name: str, served: ServedVersion, request: GenerateRequest,
                    on_token: Callable[[], None] = lambda: None) -> dict:
    """The whole generation, as one JSON-ready answer (run it off the event loop).

    Args:
        name, served, request: the model's name, the version, the parsed request.
        on_token: called once per token decoded (the server's metrics).

    Raises:
        BadRequestError, UnavailableError: as `start_decoding`.
    """
    decoding = start_decoding(served, request)
    while not isinstance(result := next_id(decoding.ids), Generation):
        on_token()
    return {"model_name": name, "model_version": str(served.version),
            "text_output": decoding.text_of(result.new_ids), **_stopped(result)}


async def stream_events(name: str, served: ServedVersion, decoding: Decoding,
                        on_token: Callable[[], None] = lambda: None) -> AsyncIterator[bytes]:
    """Server-sent events (`data: <json>\\n\\n`): one per new token, then the stop reason.

    Each token is decoded in a worker thread. When the client hangs up, Starlette cancels
    the response; the decoding generator is closed, so no further token is computed.

    Args:
        name, served: the model's name and the version decoding.
        decoding: `start_decoding`'s result (made before the response starts, so that a bad
            request is a 400, not a broken stream).
        on_token: called once per token decoded (the server's metrics).
    """
    head = {"model_name": name, "model_version": str(served.version)}
    new_ids: list[int] = []
    sent = ""
    try:
        while not isinstance(result := await asyncio.to_thread(next_id, decoding.ids),
                             Generation):
            on_token()
            new_ids.append(result)
            text = decoding.text_of(new_ids)
            piece = text[len(sent):] if text.startswith(sent) else text
            sent = text
            yield _event({**head, "text_output": piece})
        yield _event({**head, "text_output": "", **_stopped(result)})
    finally:
        try:
            decoding.ids.close()
        except ValueError:  # its thread is running a step: nobody will ask for the next one
            pass


def _stopped(result: Generation) -> dict[str, str]:
    """Why decoding stopped, in the request's words ("max_tokens", not max_new_tokens):
    "max_tokens", "max_len" or "end_of_text", and one sentence."""
    return {"stop_reason": result.stop_reason.replace("max_new_tokens", "max_tokens"),
            "message": result.message.replace("max_new_tokens", "max_tokens")}


def _event(document: dict) -> bytes:
    return b"data: " + json.dumps(document, ensure_ascii=False).encode() + b"\n\n"
