"""A TensorFlow SavedModel in the TF Serving layout, and a way to call it back.

TF Serving loads `<model_name>/<version>/saved_model.pb` plus `variables/`; the version folder
is what `write_savedmodel` fills. Its signature `serving_default` takes `token_ids` (int32
`[batch, sequence]`) and returns `{"logits": ...}`; `serving_int64` is the same for int64 ids,
which gRPC clients send when they build the tensor with `tf.make_tensor_proto(np.array(...))`.
A language model's SavedModel also has `decoder_step`, one decoding step with a key/value
cache (`export.formats.savedmodel_decoder`).
The SavedModel is written through `keras.export.ExportArchive`, which stores the traced graph
and the weights only: loading it needs TensorFlow and nothing from keras_attn.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from export.artifact.metadata import INPUT_NAME, OUTPUT_NAME
from export.formats.savedmodel_decoder import add_decoder_step, quiet_sanitizing
from export.formats.tf_function import TOKEN_IDS_INT64_SPEC, TOKEN_IDS_SPEC, checked_logits_function
from export.formats.warmup import write_warmup_requests

SIGNATURE_NAME = "serving_default"
INT64_SIGNATURE_NAME = "serving_int64"
SIGNATURES = {SIGNATURE_NAME: TOKEN_IDS_SPEC, INT64_SIGNATURE_NAME: TOKEN_IDS_INT64_SPEC}


def write_savedmodel(
    model: keras.Model, folder: str | os.PathLike, max_len: int, vocab_size: int,
    decoder_step: bool = False,
) -> None:
    """Writes `model` as a SavedModel into `folder` (which must not exist yet or be empty).

    Args:
        model: the Keras model: `token_ids` int32 `[batch, sequence]` -> logits.
        folder: the TF Serving version folder.
        max_len: the longest sequence the signature accepts.
        vocab_size: ids must lie in [0, vocab_size).
        decoder_step: also write the `decoder_step` signature (language models: one cached
            decoding step, decoder.onnx's twin; `export.formats.savedmodel_decoder`).

    Raises:
        OSError: a file could not be written (a full disk, no permission), with TensorFlow's
            message, which names the file.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, spec in SIGNATURES.items():
        archive.add_endpoint(
            name=name,
            fn=checked_logits_function(model, max_len=max_len, vocab_size=vocab_size),
            input_signature=[spec],
        )
    if decoder_step:
        add_decoder_step(archive, model, max_len, vocab_size)
    try:
        with quiet_sanitizing():  # writing traces `decoder_step` again, with its dotted names
            archive.write_out(os.fspath(folder), verbose=False)
        # TF Serving replays these before serving the version (export.formats.warmup).
        write_warmup_requests(folder, max_len, vocab_size, SIGNATURES)
    except tf.errors.OpError as error:
        # TensorFlow's file writes fail with its own errors (a full disk is a
        # ResourceExhaustedError), not OSError: the error of a failed write, as Python's own
        # writes (the ONNX files, model.keras) raise it.
        raise OSError(f"Cannot write the SavedModel: {error.message}") from None


def savedmodel_runtimes(folder: str | os.PathLike) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Loads the SavedModel in `folder` once and returns each signature (`serving_default`,
    `serving_int64`) as a parity-battery runtime (ids -> float32 logits), called the way TF
    Serving calls it: by signature, with the input and output named, in the signature's
    dtype."""
    loaded = tf.saved_model.load(os.fspath(folder))

    def runtime(name: str) -> Callable[[np.ndarray], np.ndarray]:
        dtype = SIGNATURES[name].dtype

        def run(token_ids: np.ndarray) -> np.ndarray:
            # `loaded` owns the variables the signature reads: the closure keeps it alive.
            outputs = loaded.signatures[name](**{INPUT_NAME: tf.constant(token_ids, dtype)})
            return outputs[OUTPUT_NAME].numpy()

        return run

    return {name: runtime(name) for name in SIGNATURES}


def savedmodel_runtime(folder: str | os.PathLike, signature_name: str = SIGNATURE_NAME
                       ) -> Callable[[np.ndarray], np.ndarray]:
    """One signature of the SavedModel in `folder` as a runtime (see `savedmodel_runtimes`)."""
    return savedmodel_runtimes(folder)[signature_name]
