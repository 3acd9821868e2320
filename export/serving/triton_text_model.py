"""A Triton Python-backend model that takes text: `keras-attn triton-repo` copies this file as
REPO/NAME_text/<version>/model.py, beside that version's model.onnx and tokenizer.json.

Triton runs it in its Python backend (`TritonPythonModel`, the backend's interface:
https://github.com/triton-inference-server/python_backend#usage), so the server tokenizes:
clients send `text` (BYTES, one string per row) and get

    logits         FP32   [batch, num_classes]   model.onnx's output
    probabilities  FP32   [batch, num_classes]   the softmax of the logits (computed in float64)
    label          BYTES  [batch, 1]             the argmax class name (UTF-8)

as `keras-attn serve` answers a `text` input: the same tokenizer.json (`tokenizers`, no special
tokens, the first `max_len` ids, right-padded with 0), the same ONNX file in onnxruntime, the
same post-processing. It needs only numpy, onnxruntime and tokenizers in the Python that runs
the model (Triton's execution environment), never keras_attn nor this package.

Bad input is answered, per request, with Triton's INVALID_ARG error (HTTP 400, gRPC
INVALID_ARGUMENT) and a message that says what was wrong, what is allowed and what was
received: BYTES that are not UTF-8, or a text with no token. The requests Triton's dynamic
batcher hands over together run as one onnxruntime call, padded to their longest row (a row's
logits do not depend on its batch-mates or on padding: the export's parity battery checks it).

Each version's settings are in its own `text_model.json` (written by export/serving/triton.py
from that version's export, since versions may differ in max_len): `{"max_len": int,
"class_names": [str, ...]}`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TEXT_INPUT, LOGITS, PROBABILITIES, LABEL = "text", "logits", "probabilities", "label"
TOKEN_IDS = "token_ids"
SETTINGS_FILENAME = "text_model.json"


class BadInputError(ValueError):
    """A client's mistake: answered with INVALID_ARG and this message."""


def decode_texts(values: np.ndarray) -> list[str]:
    """The texts of one request's `text` tensor (object array of bytes, `[rows, 1]`).

    Raises:
        BadInputError: an element that is not UTF-8.
    """
    texts = []
    for index, value in enumerate(values.reshape(-1).tolist()):
        try:
            texts.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
        except UnicodeDecodeError as error:
            raise BadInputError(f"Input 'text': BYTES elements must be UTF-8 text. Received: "
                           f"element {index}, invalid at byte {error.start}") from None
    return texts


def encode(tokenizer, texts: list[str], max_len: int) -> list[list[int]]:
    """Each text's first `max_len` ids, as keras-attn's `Tokenizer.encode_batch` gives them.

    Raises:
        BadInputError: a text with no token after tokenization.
    """
    rows = [encoding.ids[:max_len]
            for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)]
    for index, row in enumerate(rows):
        if not row:
            raise BadInputError(f"Every text needs at least one token after tokenization. "
                           f"Received: text {index} = {texts[index]!r}")
    return rows


def padded(rows: list[list[int]], dtype) -> np.ndarray:
    """The rows right-padded with 0 to the longest: `[len(rows), longest]`."""
    batch = np.zeros((len(rows), max(map(len, rows))), dtype=dtype)
    for index, row in enumerate(rows):
        batch[index, :len(row)] = row
    return batch


def classify(logits: np.ndarray, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities FP32 `[batch, classes]`, labels object array of UTF-8 bytes
    `[batch, 1]`), as `export.runtime.Predictor.classify` computes them."""
    shifted = np.asarray(logits, np.float64)
    shifted = np.exp(shifted - shifted.max(axis=-1, keepdims=True))
    probabilities = (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)
    labels = np.array([[class_names[i].encode("utf-8")] for i in np.argmax(logits, axis=-1)],
                      dtype=object)
    return probabilities, labels


class TritonPythonModel:
    """Triton's Python-backend interface: `initialize`, `execute`, `finalize`."""

    def initialize(self, args: dict) -> None:
        import onnxruntime as ort
        import tokenizers

        folder = Path(args["model_repository"]) / args["model_version"]
        settings = json.loads((folder / SETTINGS_FILENAME).read_text(encoding="utf-8"))
        self.max_len, self.class_names = int(settings["max_len"]), settings["class_names"]
        self.tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one instance per core: Triton's instance_group
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.id_dtype = np.int64 if "int64" in self.session.get_inputs()[0].type else np.int32

    def execute(self, requests: list) -> list:
        import triton_python_backend_utils as pb_utils

        responses: list = [None] * len(requests)
        rows: list[list[int]] = []
        owners: list[tuple[int, int, int]] = []  # (request, first row, row count)
        for number, request in enumerate(requests):
            try:
                texts = decode_texts(pb_utils.get_input_tensor_by_name(request,
                                                                       TEXT_INPUT).as_numpy())
                encoded = encode(self.tokenizer, texts, self.max_len)
            except BadInputError as error:
                responses[number] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG))
                continue
            owners.append((number, len(rows), len(encoded)))
            rows.extend(encoded)
        if rows:
            (logits,) = self.session.run([LOGITS], {TOKEN_IDS: padded(rows, self.id_dtype)})
            probabilities, labels = classify(logits, self.class_names)
            for number, first, count in owners:
                part = slice(first, first + count)
                responses[number] = pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor(LOGITS, logits[part].astype(np.float32)),
                    pb_utils.Tensor(PROBABILITIES, probabilities[part]),
                    pb_utils.Tensor(LABEL, labels[part])])
        return responses

    def finalize(self) -> None:
        self.session = None
