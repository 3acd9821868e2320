"""The endpoints of a language model's cached decoding step, as `decoder.onnx` and the
SavedModel's `decoder_step` signature both name them (the names Hugging Face's ONNX decoders
use):

    inputs   token_ids                    int64   [batch, new]
             position_ids                 int64   [batch, new]   absolute positions
             past_key_values.<i>.key      float32 [batch, heads, past, head_dim]  one per block
             past_key_values.<i>.value    float32 [batch, heads, past, head_dim]
    outputs  logits                       float32 [batch, new, vocab_size]
             present.<i>.key              float32 [batch, heads, past + new, head_dim]
             present.<i>.value            float32 [batch, heads, past + new, head_dim]

`past` may be 0: the first step reads the whole prompt. The writers
(`export.formats.decoder_onnx`, `export.formats.savedmodel_decoder`) and the runtime
(`export.runtime.decoder_step`) read the names from here, and the messages of the step's
input contract: the SavedModel signature asserts them in the graph, `check_step_inputs` raises
them from NumPy before onnxruntime runs (tf2onnx drops asserts: both ONNX steps returned logits
for max_len + 1 keys, and a batch mismatch failed deep inside onnxruntime). Standard library and
NumPy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from export.artifact.token_ids import range_message

TOKEN_IDS, POSITION_IDS, LOGITS = "token_ids", "position_ids", "logits"
SHAPE_MESSAGE = "position_ids must have the shape of token_ids, [batch, new]"


def position_message(max_len: int, received: str) -> str:
    return (f"position_ids must lie in [0, max_len={max_len}), one learned position vector "
            f"each. Received: {received}")


def window_message(max_len: int) -> str:
    """What a step past the model's window is told (the received part follows)."""
    return (f"past + new must be at most max_len={max_len}, the number of learned position "
            f"vectors")


def batch_message(name: str) -> str:
    return f"{name} must have the batch size of token_ids"


def past_length_message(name: str) -> str:
    return (f"{name} must have the past length of past_key_values.0.key (every block has read "
            f"the same tokens)")


def check_step_inputs(token_ids: np.ndarray, position_ids: np.ndarray,
                      cache: Sequence[tuple[np.ndarray, np.ndarray]], max_len: int,
                      vocab_size: int, heads: int, head_dim: int) -> None:
    """The decoding step's input contract, from NumPy, before any cast.

    Args:
        token_ids: integer `[batch, new]`.
        position_ids: integer `[batch, new]`, in [0, max_len).
        cache: one (key, value) pair per block, float32 `[batch, heads, past, head_dim]`, the
            same batch and past everywhere, past + new <= max_len.

    Raises:
        ValueError: with the message the SavedModel's `decoder_step` asserts for the same
            input, saying what is allowed and what was received.
    """
    for name, array in ((TOKEN_IDS, token_ids), (POSITION_IDS, position_ids)):
        if array.dtype == bool or not np.issubdtype(array.dtype, np.integer) or array.ndim != 2:
            raise ValueError(f"{name} must be an integer array [batch, new]. Received: dtype "
                             f"{array.dtype}, shape {array.shape}")
    if position_ids.shape != token_ids.shape:
        raise ValueError(f"{SHAPE_MESSAGE}. Received: position_ids {position_ids.shape}, "
                         f"token_ids {token_ids.shape}")
    if token_ids.size and (token_ids.min() < 0 or token_ids.max() >= vocab_size):
        raise ValueError(range_message(vocab_size, f"ids from {token_ids.min()} to "
                                                   f"{token_ids.max()}"))
    if position_ids.size and (position_ids.min() < 0 or position_ids.max() >= max_len):
        raise ValueError(position_message(max_len, f"positions from {position_ids.min()} to "
                                                   f"{position_ids.max()}"))
    batch, new = token_ids.shape
    first = np.asarray(cache[0][0]) if len(cache) else None
    past = first.shape[2] if first is not None and first.ndim == 4 else 0
    for layer, pair in enumerate(cache):
        for name, tensor in zip(past_names(layer), pair, strict=True):
            shape = np.shape(tensor)
            if len(shape) != 4 or shape[1] != heads or shape[3] != head_dim:
                raise ValueError(f"{name} must be float32 [batch, heads={heads}, past, "
                                 f"head_dim={head_dim}]. Received: shape {shape}")
            if shape[0] != batch:
                raise ValueError(f"{batch_message(name)}. Received: {shape[0]}, token_ids "
                                 f"{batch}")
            if shape[2] != past:
                raise ValueError(f"{past_length_message(name)}. Received: {shape[2]}, "
                                 f"past_key_values.0.key {past}")
    if past + new > max_len:
        raise ValueError(f"{window_message(max_len)}. Received: past {past} + new {new} = "
                         f"{past + new}")


def past_names(layer: int) -> tuple[str, str]:
    """The input names of block `layer`'s past keys and values."""
    return f"past_key_values.{layer}.key", f"past_key_values.{layer}.value"


def present_names(layer: int) -> tuple[str, str]:
    """The output names of block `layer`'s present keys and values."""
    return f"present.{layer}.key", f"present.{layer}.value"
