"""Attention weights from an export in onnxruntime, never importing TensorFlow or Keras:
`attention.onnx` (`export.formats.attention_onnx`), ids checked as the predictor checks them.

Example:
    >>> from export.runtime.attention import load_attention
    >>> attention = load_attention("saved_models/sentiment/1")
    >>> [weights.shape for weights in attention.maps([[12, 7, 3]])]   # one per block
    [(1, 2, 3, 3), (1, 2, 3, 3)]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from export.artifact.manifest import ATTENTION_FILENAME, MANIFEST_FILENAME, read_manifest
from export.artifact.metadata import INPUT_NAME
from export.artifact.token_ids import check_token_ids
from export.runtime.predictor import ExportSession


class AttentionMaps(ExportSession):
    """An onnxruntime session over `attention.onnx`.

    Args:
        path: the attention.onnx file.
        optimization: an `export.runtime.predictor.OPTIMIZATION_LEVELS` name.
        threads: intra-op threads.

    Attributes:
        metadata: what the export recorded (as `Predictor.metadata`).
        output_names: "attentions.0", ... one per block, in order.
    """

    def __init__(self, path: str | os.PathLike, optimization: str = "all",
                 threads: int = 1) -> None:
        super().__init__(path, optimization, threads)
        self.output_names = [output.name for output in self.session.get_outputs()]

    def maps(self, token_ids: Any) -> list[np.ndarray]:
        """Each block's attention weights for a batch of token ids.

        Args:
            token_ids: as `Predictor.predict` takes them (padded with 0, or ragged lists).

        Returns:
            One float32 array per block, `[batch, heads, sequence, sequence]`: row i is how
            much position i attends to each position (0 on padding, each row summing to 1).

        Raises:
            ValueError: the ids `export.artifact.token_ids.check_token_ids` refuses.
        """
        ids = check_token_ids(token_ids, self.vocab_size, self.max_len)
        return self.session.run(self.output_names, {INPUT_NAME: ids})


def load_attention(path: str | os.PathLike, optimization: str = "all") -> AttentionMaps:
    """`AttentionMaps` over a version folder's attention.onnx, or an attention.onnx file.

    Raises:
        FileNotFoundError: the folder has no attention.onnx (exports made before it existed,
            or whose attention.onnx failed its check; the manifest says why), saying so.
    """
    given = Path(path)
    file = given / ATTENTION_FILENAME if given.is_dir() else given
    if not file.is_file():
        why = "not an export version folder"
        if given.is_dir() and (given / MANIFEST_FILENAME).is_file():
            entry = read_manifest(given).get("attention")
            why = ("an export made before attention.onnx existed: export it again"
                   if entry is None else f"it was not shipped: {entry.get('reason')}")
        raise FileNotFoundError(f"No {ATTENTION_FILENAME} in {str(given)!r} ({why}). Expected "
                                f"a version folder holding {ATTENTION_FILENAME}, or the file")
    return AttentionMaps(file, optimization)
