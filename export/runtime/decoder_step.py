"""The cached decoding step of a language model export on onnxruntime: `decoder.onnx`.

Beside `model.onnx` (full-sequence logits), a language-model export holds `decoder.onnx`, one
decoding step with a key/value cache; its inputs and outputs are named in
`export.artifact.decoder_io`. `past` may be 0: the first step reads the whole prompt. The file
is written by `export.formats.decoder_onnx`, and checked at every step by
`export.verification.decoder_parity`. NumPy and onnxruntime only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from export.artifact.decoder_io import (
    LOGITS,
    POSITION_IDS,
    TOKEN_IDS,
    check_step_inputs,
    past_names,
    present_names,
)
from export.artifact.metadata import decode_metadata
from export.artifact.token_ids import as_id_array
from export.runtime.predictor import session_options


class CachedStep:
    """One decoding step on onnxruntime over `decoder.onnx`; a step of
    `export.runtime.sampling.generate_ids` (the cache: one (key, value) pair of NumPy arrays
    `[batch, heads, past, head_dim]` per block).

    Args:
        path: the decoder ONNX file.
        threads: intra-op threads.
        optimization: an `export.runtime.predictor.OPTIMIZATION_LEVELS` name.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1,
                 optimization: str = "all") -> None:
        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path),
                                            sess_options=session_options(optimization, threads),
                                            providers=["CPUExecutionProvider"])
        self.metadata = decode_metadata(self.session.get_modelmeta().custom_metadata_map)
        config = self.metadata["config"]
        self.max_len, self.vocab_size = self.metadata["max_len"], self.metadata["vocab_size"]
        self.num_layers, self.num_heads = config["num_layers"], config["num_heads"]
        self.head_dim = config["d_model"] // config["num_heads"]
        self.output_names = [LOGITS] + [name for layer in range(self.num_layers)
                                        for name in present_names(layer)]

    def empty_cache(self, batch: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
        """No past yet: one (key, value) pair of float32 `[batch, heads, 0, head_dim]`."""
        empty = np.zeros((batch, self.num_heads, 0, self.head_dim), dtype=np.float32)
        return [(empty, empty) for _ in range(self.num_layers)]

    def __call__(self, token_ids, position_ids, cache):
        """(logits float32 `[batch, new, vocab]`, the present keys and values per block).

        Raises:
            ValueError: any input the SavedModel's `decoder_step` refuses, with its message
                (`export.artifact.decoder_io.check_step_inputs`): ids outside
                [0, vocab_size), positions outside [0, max_len), past + new > max_len, or a
                cache whose batch, heads, past length or head size does not fit.
        """
        token_ids = as_id_array(token_ids, TOKEN_IDS)  # a boolean among ids is refused
        position_ids = as_id_array(position_ids, POSITION_IDS)
        check_step_inputs(token_ids, position_ids, cache, self.max_len, self.vocab_size,
                          self.num_heads, self.head_dim)  # before the cast to int64
        token_ids, position_ids = token_ids.astype(np.int64), position_ids.astype(np.int64)
        feed = {TOKEN_IDS: token_ids, POSITION_IDS: position_ids}
        for layer, (key, value) in enumerate(cache):
            feed.update(zip(past_names(layer), (key, value), strict=True))
        logits, *present = self.session.run(self.output_names, feed)
        return logits, list(zip(present[0::2], present[1::2], strict=True))
