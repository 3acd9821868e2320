"""A TensorFlow SavedModel in the TF Serving layout, and a way to call it back.

TF Serving loads `<model_name>/<version>/saved_model.pb` plus `variables/`; the version folder
is what `write_savedmodel` fills. Its one signature, `serving_default`, takes `token_ids`
(int32 `[batch, sequence]`) and returns `{"logits": ...}`. The SavedModel is written through
`keras.export.ExportArchive`, which stores the traced graph and the weights only: loading it
needs TensorFlow and nothing from keras_attn.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from export.endpoint import TOKEN_IDS_SPEC, checked_logits_function
from export.metadata import INPUT_NAME, OUTPUT_NAME

SIGNATURE_NAME = "serving_default"


def write_savedmodel(
    model: keras.Model, folder: str | os.PathLike, max_len: int, vocab_size: int
) -> None:
    """Writes `model` as a SavedModel into `folder` (which must not exist yet or be empty).

    Args:
        model: the Keras model: `token_ids` int32 `[batch, sequence]` -> logits.
        folder: the TF Serving version folder.
        max_len: the longest sequence the signature accepts.
        vocab_size: ids must lie in [0, vocab_size).
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE_NAME,
        fn=checked_logits_function(model, max_len=max_len, vocab_size=vocab_size),
        input_signature=[TOKEN_IDS_SPEC],
    )
    archive.write_out(os.fspath(folder), verbose=False)


def savedmodel_runtime(folder: str | os.PathLike) -> Callable[[np.ndarray], np.ndarray]:
    """Loads the SavedModel in `folder` and returns its `serving_default` signature as a
    parity-battery runtime (int32 ids -> float32 logits), called the way TF Serving calls it:
    by signature, with the input and output named."""
    loaded = tf.saved_model.load(os.fspath(folder))

    def run(token_ids: np.ndarray) -> np.ndarray:
        # `loaded` owns the variables the signature reads: keep it alive with the closure.
        signature = loaded.signatures[SIGNATURE_NAME]
        outputs = signature(**{INPUT_NAME: tf.constant(token_ids, tf.int32)})
        return outputs[OUTPUT_NAME].numpy()

    return run
