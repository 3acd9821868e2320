"""The decoder step as a TensorFlow function: decoder.onnx's source and the SavedModel's
`decoder_step` signature.

A language-model SavedModel has, beside its full-sequence signatures (`export.formats.savedmodel`),
`decoder_step`: one decoding step with a key/value cache, with decoder.onnx's endpoints
(`export.runtime.decoder_step`):

    inputs   token_ids                    int64   [batch, new]
             position_ids                 int64   [batch, new]   absolute positions
             past_key_values.<i>.key      float32 [batch, heads, past, head_dim]  one per block
             past_key_values.<i>.value    float32 [batch, heads, past, head_dim]
    outputs  logits                       float32 [batch, new, vocab_size]
             present.<i>.key, .value      float32 [batch, heads, past + new, head_dim]

The same traced function (`step_function`) is what tf2onnx converts into decoder.onnx; the
signature adds `tf.debugging` asserts in front of it (`checked_step_function`), because a TF
Serving client sends whatever it likes: ids in [0, vocab_size) (checked in int64, before any
cast), positions in [0, max_len), past + new <= max_len, and past tensors that agree with each
other and with the batch. tf2onnx would drop the asserts; `export.runtime.decoder_step.CachedStep`
checks
ids and positions in NumPy instead (not the past tensors' shapes).

`SavedModelStep` calls the signature back as a step of `export.runtime.sampling.generate_ids`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from export.artifact.decoder_io import (
    LOGITS,
    POSITION_IDS,
    SHAPE_MESSAGE,
    TOKEN_IDS,
    batch_message,
    past_length_message,
    past_names,
    position_message,
    present_names,
    window_message,
)
from export.artifact.token_ids import range_message
from keras_attn.layers.token_checks import in_range_asserts

DECODER_SIGNATURE_NAME = "decoder_step"


def step_function(model) -> tuple[Callable[..., dict[str, tf.Tensor]], list[tf.TensorSpec]]:
    """The decoder step of a keras_attn language model as a TensorFlow function body.

    Args:
        model: a float32 keras_attn language model.

    Returns:
        (step, specs): `step(token_ids, position_ids, *past)` with one past key and value per
        block, in `past_names` order, returning the dict of outputs of the module docstring;
        `specs` the matching named `tf.TensorSpec`s (batch, new and past dims left open).
    """
    from keras_attn.models.cached_decoder import CachedDecoder

    decoder = CachedDecoder(model)
    layers, heads, head_dim = len(decoder.blocks), decoder.num_heads, decoder.head_dim
    specs = [tf.TensorSpec([None, None], tf.int64, name=TOKEN_IDS),
             tf.TensorSpec([None, None], tf.int64, name=POSITION_IDS)]
    for layer in range(layers):
        specs += [tf.TensorSpec([None, heads, None, head_dim], tf.float32, name=name)
                  for name in past_names(layer)]

    def step(token_ids, position_ids, *past):
        # The Keras cache of a block is one [batch, 2, heads, past, head_dim] tensor.
        cache = [tf.stack(past[2 * layer:2 * layer + 2], axis=1) for layer in range(layers)]
        logits, present = decoder._step(token_ids, position_ids, cache)
        outputs = {LOGITS: logits}
        for layer, block_cache in enumerate(present):
            key, value = present_names(layer)
            outputs[key], outputs[value] = block_cache[:, 0], block_cache[:, 1]
        return outputs

    return step, specs


def checked_step_function(model, max_len: int, vocab_size: int
                          ) -> tuple[Callable[..., dict[str, tf.Tensor]], list[tf.TensorSpec]]:
    """`step_function` behind asserts on every input; each failure message says what is
    allowed and what was received (a TF Serving client reads it in its error).

    Raises (when the signature runs):
        tf.errors.InvalidArgumentError: an id outside [0, vocab_size), a position outside
            [0, max_len), position_ids not shaped like token_ids, a past tensor whose batch or
            length differs from the others', or past + new > max_len.
    """
    step, specs = step_function(model)

    def decoder_step(token_ids, position_ids, *past):
        batch, new = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        past_length = tf.shape(past[0])[2]
        checks = [
            *in_range_asserts(token_ids, vocab_size, "id",
                              lambda received: range_message(vocab_size, received)),
            tf.debugging.assert_equal(
                tf.shape(position_ids), tf.shape(token_ids),
                message=f"{SHAPE_MESSAGE}. Received (x: the shape of position_ids, y: of "
                        f"token_ids)"),
            *in_range_asserts(position_ids, max_len, "position",
                              lambda received: position_message(max_len, received)),
            tf.debugging.assert_less_equal(
                past_length + new, max_len,
                message=f"{window_message(max_len)}. Received (x: past + new)"),
        ]
        for name, tensor in zip((name for layer in range(len(past) // 2)
                                 for name in past_names(layer)), past, strict=True):
            checks += [
                tf.debugging.assert_equal(
                    tf.shape(tensor)[0], batch,
                    message=f"{batch_message(name)}. Received (x: its batch size, y: that of "
                            "token_ids)"),
                tf.debugging.assert_equal(
                    tf.shape(tensor)[2], past_length,
                    message=f"{past_length_message(name)}. Received (x: its past length, y: "
                            "that of past_key_values.0.key)"),
            ]
        # Every input waits for the checks: else the model's own Gather or the stacking of a
        # block's key and value could fail first, with a message about indices or shapes.
        with tf.control_dependencies(checks):
            token_ids, position_ids = tf.identity(token_ids), tf.identity(position_ids)
            past = [tf.identity(tensor) for tensor in past]
        return step(token_ids, position_ids, *past)

    return decoder_step, specs


def add_decoder_step(archive, model, max_len: int, vocab_size: int) -> None:
    """Adds the `decoder_step` signature to a `keras.export.ExportArchive` that tracks
    `model` (a keras_attn language model); `max_len` bounds past + new and the positions,
    `vocab_size` the ids (checked as `checked_step_function` describes)."""
    step, specs = checked_step_function(model, max_len, vocab_size)
    with quiet_sanitizing():
        archive.add_endpoint(name=DECODER_SIGNATURE_NAME, fn=step, input_signature=specs)


def has_decoder_step(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a SavedModel with a `decoder_step` signature; reads the
    SignatureDefs from saved_model.pb without loading the graph."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = Path(folder) / "saved_model.pb"
    if not path.is_file():
        return False
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    return any(DECODER_SIGNATURE_NAME in graph.signature_def
               for graph in saved_model.meta_graphs)


class _DropSanitizing(logging.Filter):
    """TensorFlow warns that "past_key_values.0.key" is not a Python parameter name and calls
    the Python function with "past_key_values_0_key"; the SignatureDef keeps the dotted
    name, which is the one TF Serving clients use. The warning is expected: drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is not a valid tf.function parameter name" not in record.getMessage()


@contextlib.contextmanager
def quiet_sanitizing():
    """Within the block, absl's warning that a `decoder_step` input name was sanitized is
    dropped (`_DropSanitizing`); TensorFlow gives it each time it traces the signature's
    function: when the endpoint is added, and again when the archive is written. Every other
    absl line still shows."""
    logger, dropped = logging.getLogger("absl"), _DropSanitizing()
    logger.addFilter(dropped)
    try:
        yield
    finally:
        logger.removeFilter(dropped)


def decoder_step_io(model) -> dict[str, dict[str, str]]:
    """The `decoder_step` signature's inputs and outputs as "dtype [dims]", for the manifest
    (the dims named as decoder.onnx names them)."""
    from keras_attn.models.cached_decoder import CachedDecoder

    decoder = CachedDecoder(model)
    heads, head_dim = decoder.num_heads, decoder.head_dim
    inputs = {TOKEN_IDS: "int64 [batch, new]", POSITION_IDS: "int64 [batch, new]"}
    outputs = {LOGITS: f"float32 [batch, new, {decoder.vocab_size}]"}
    for layer in range(len(decoder.blocks)):
        inputs.update(dict.fromkeys(past_names(layer),
                                    f"float32 [batch, {heads}, past, {head_dim}]"))
        outputs.update(dict.fromkeys(present_names(layer),
                                     f"float32 [batch, {heads}, past_plus_new, {head_dim}]"))
    return {"inputs": inputs, "outputs": outputs}


class SavedModelStep:
    """The `decoder_step` signature of a SavedModel as a step of
    `export.runtime.sampling.generate_ids`, called as TF Serving calls it: by signature, with named
    inputs. The cache: one (key, value) pair of float32 `[batch, heads, past, head_dim]` per
    block, as `export.runtime.decoder_step.CachedStep` keeps it.

    Args:
        folder: the SavedModel (an export's version folder).

    Raises:
        KeyError: the SavedModel has no `decoder_step` signature (see `has_decoder_step`).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        with quiet_sanitizing():  # the owner of the signature's variables
            self.loaded = tf.saved_model.load(os.fspath(folder))
        self.signature = self.loaded.signatures[DECODER_SIGNATURE_NAME]
        # TensorFlow calls the signature with Python names ("past_key_values_0_key"); the
        # SignatureDef, which TF Serving reads, keeps the specs' names ("past_key_values.0.key").
        specs = self.signature.structured_input_signature[1]
        self.keywords = {spec.name: keyword for keyword, spec in specs.items()}
        self.num_layers = sum(name.endswith(".key") for name in self.keywords)
        past_spec = specs[self.keywords[past_names(0)[0]]]
        _, self.num_heads, _, self.head_dim = past_spec.shape.as_list()

    def empty_cache(self, batch: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
        """No past yet: one (key, value) pair of float32 `[batch, heads, 0, head_dim]`."""
        empty = np.zeros((batch, self.num_heads, 0, self.head_dim), dtype=np.float32)
        return [(empty, empty) for _ in range(self.num_layers)]

    def __call__(self, token_ids, position_ids, cache):
        """(logits float32 `[batch, new, vocab]`, the present (key, value) per block).

        Raises:
            tf.errors.InvalidArgumentError: inputs the signature refuses (see
                `checked_step_function`).
        """
        feed = {TOKEN_IDS: tf.constant(token_ids, tf.int64),
                POSITION_IDS: tf.constant(position_ids, tf.int64)}
        for layer, pair in enumerate(cache):
            feed.update({name: tf.constant(tensor, tf.float32)
                         for name, tensor in zip(past_names(layer), pair, strict=True)})
        outputs = self.signature(**{self.keywords[name]: tensor for name, tensor in feed.items()})
        present = [tuple(outputs[name].numpy() for name in present_names(layer))
                   for layer in range(self.num_layers)]
        return outputs[LOGITS].numpy(), present
