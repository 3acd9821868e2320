"""Inference on an exported ONNX model with onnxruntime, never importing TensorFlow or Keras.

This is the serving side: a process that loads a version folder, checks each batch of token
ids (onnxruntime would wrap a negative id around silently and knows nothing of max_len), and
returns logits. NumPy, onnxruntime and the standard library only: not onnx, not onnxscript.

A version folder holds up to three ONNX files (see `export.formats.optimize`); `load` picks one:

    "optimized" (default)  model.optimized.onnx: fused LayerNormalization and attention,
                           parity-checked like model.onnx; model.onnx when the export has none
    "portable"             model.onnx: standard ONNX ops only, as tf2onnx wrote it
    "int8"                 model.int8.onnx: 8-bit weights, held to an accuracy bound (argmax
                           agreement with Keras), not to the fp32 tolerance

Example:
    >>> from export import runtime
    >>> predictor = runtime.load("saved_models/sentiment/1")
    >>> predictor.predict([[12, 7, 3], [5]]).shape          # ragged lists are padded with 0
    (2, 3)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from export.artifact.manifest import INT8_FILENAME, ONNX_FILENAME, OPTIMIZED_FILENAME
from export.artifact.metadata import INPUT_NAME, OUTPUT_NAME, decode_metadata
from export.artifact.token_ids import check_token_ids
from export.runtime.sampling import softmax

# "basic" keeps the graph as tf2onnx wrote it (constant folding, redundant nodes removed);
# "all" also fuses, e.g. the decomposed LayerNorm back into one kernel. Parity is checked at
# both, since fusions change the order of floating-point operations.
OPTIMIZATION_LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# onnxruntime multiplies uint8 activations by int8 weights (U8S8) with VPMADDUBSW on x86 CPUs
# without VNNI (AVX2, AVX-512 without VNNI). It adds pairs of products into a saturating int16,
# so a sum past 32767 is clipped: on an AMD EPYC with AVX2 only, an int8 file exported by
# keras-attn 0.1 agreed with Keras on 81% of its representative rows where it agrees on 100%
# on a CPU with VNNI. This entry makes onnxruntime take its exact (slower) path there
# (onnxruntime_session_options_config_keys.h). Files exported since have uint8 weights
# (U8U8), which never saturate, so other runtimes need no setting; this keeps older ones exact.
EXACT_INT8_MATMUL = ("session.x64quantprecision", "1")


def session_options(optimization: str = "all", threads: int = 1) -> ort.SessionOptions:
    """The onnxruntime session settings every keras-attn session uses: `optimization` (an
    `OPTIMIZATION_LEVELS` name), `threads` intra-op threads, one inter-op thread, sequential
    execution, no thread-pool spinning, errors-only logging and `EXACT_INT8_MATMUL`."""
    options = ort.SessionOptions()
    options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry(*EXACT_INT8_MATMUL)
    options.log_severity_level = 3  # errors only
    return options


# Which file of a version folder each variant loads, in order of preference.
VARIANTS = {
    "optimized": (OPTIMIZED_FILENAME, ONNX_FILENAME),
    "portable": (ONNX_FILENAME,),
    "int8": (INT8_FILENAME,),
}


class ExportSession:
    """An onnxruntime session over one ONNX file of an export, with the metadata the export
    recorded in it; `Predictor` and `export.runtime.attention.AttentionMaps` run one.

    Args:
        onnx_path: the ONNX file.
        optimization: graph optimization level, one of "disabled", "basic", "extended", "all".
        threads: intra-op threads.

    Raises:
        ValueError: an unknown `optimization`, or `threads` not a positive integer.
    """

    def __init__(self, onnx_path: str | os.PathLike, optimization: str = "all",
                 threads: int = 1) -> None:
        if optimization not in OPTIMIZATION_LEVELS:
            raise ValueError(
                f"optimization must be one of {sorted(OPTIMIZATION_LEVELS)}. "
                f"Received: optimization={optimization!r}"
            )
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer. Received: threads={threads!r}")
        self.path = Path(onnx_path)
        self.optimization = optimization
        self.session = ort.InferenceSession(
            str(self.path), sess_options=session_options(optimization, threads),
            providers=["CPUExecutionProvider"]
        )
        self.metadata = decode_metadata(self.session.get_modelmeta().custom_metadata_map)

    @property
    def max_len(self) -> int:
        return self.metadata["max_len"]

    @property
    def vocab_size(self) -> int:
        return self.metadata["vocab_size"]


class Predictor(ExportSession):
    """An onnxruntime session over one exported model, with its inputs checked.

    Args:
        onnx_path: the ONNX file (`model.onnx`, `model.optimized.onnx` or `model.int8.onnx`).
        optimization: graph optimization level, one of "disabled", "basic", "extended", "all".
        threads: intra-op threads. The default 1 suits one predictor per core (one request at
            a time, no thread pool spinning on a shared machine); raise it for large batches.

    Attributes:
        metadata: what the export recorded: "config" (the ModelConfig as a dict), "task",
            "max_len", "vocab_size", "class_names" (or None), "opset", "keras_attn_version".
        session: the underlying `onnxruntime.InferenceSession`.
    """

    @property
    def task(self) -> str:
        return self.metadata["task"]

    @property
    def class_names(self) -> list[str] | None:
        return self.metadata.get("class_names")

    def predict(self, token_ids: Any) -> np.ndarray:
        """Logits for a batch of token ids.

        Args:
            token_ids: a 2-D integer array `[batch, sequence]` padded with 0, a 1-D integer
                array (one sequence), or a list of id lists (padded here with 0).

        Returns:
            float32 logits: `[batch, num_classes]` for a classifier, `[batch, sequence,
            vocab_size]` for a language model (rows at padded positions are not meaningful).

        Raises:
            ValueError: for ids that are not integers, of rank above 2, empty, longer than
                max_len, outside [0, vocab_size), or a sequence of padding (id 0) only; see
                `export.artifact.token_ids.check_token_ids`.
        """
        return self.run(check_token_ids(token_ids, vocab_size=self.vocab_size,
                                        max_len=self.max_len))

    def run(self, checked_ids: np.ndarray) -> np.ndarray:
        """`predict` for ids that `export.artifact.token_ids.check_token_ids` has already
        returned (int32 `[batch, sequence]`), as the server's batcher receives them: one check
        per request, not two. Anything else must go through `predict`."""
        (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: checked_ids})
        return logits

    @property
    def labels(self) -> list[str]:
        """The class names of a classifier, or "0", "1", ... when the export has none."""
        num_classes = self.metadata["config"]["num_classes"]
        return self.class_names or [str(index) for index in range(num_classes)]

    def classify(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A classifier's post-processing, the one every serving path uses (CLI `predict`,
        both HTTP protocols).

        Args:
            logits: float32 `[batch, num_classes]`, as `predict` returns them.

        Returns:
            (probabilities, labels): float64 `[batch, num_classes]`, the softmax of the logits;
            and an object array `[batch]` of the argmax class names (`labels`).
        """
        probabilities = softmax(np.asarray(logits))
        names = self.labels
        return probabilities, np.array([names[i] for i in np.argmax(logits, axis=-1)], object)

    def predict_by_length(self, token_ids: Any, batch_size: int = 32) -> np.ndarray:
        """`predict` over many texts, in batches of similar length: the same logits, faster.

        The rows are sorted by length (the position of their last non-padding id) and cut into
        batches of `batch_size`, each padded only to its own longest row, so that short texts
        do not pay for the longest one. A row's logits do not depend on its batch-mates or on
        padding (the export's parity battery checks both).

        Args:
            token_ids: as for `predict`.
            batch_size: rows per onnxruntime call.

        Returns:
            float32 logits in the order of the rows, shaped as `predict` returns them (a
            language model's rows are zero beyond each row's batch width).

        Raises:
            ValueError: as `predict`, or a batch_size that is not a positive integer.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer. "
                             f"Received: batch_size={batch_size!r}")
        ids = check_token_ids(token_ids, vocab_size=self.vocab_size, max_len=self.max_len)
        lengths = ids.shape[1] - np.argmax(ids[:, ::-1] != 0, axis=1)  # padding-only is refused
        order = np.argsort(lengths, kind="stable")
        logits = None
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = int(lengths[rows].max())
            (batch,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: ids[rows, :width]})
            if logits is None:  # [n, num_classes], or [n, length, vocab_size]
                shape = batch.shape[1:] if batch.ndim == 2 else (ids.shape[1], batch.shape[2])
                logits = np.zeros((len(ids), *shape), batch.dtype)
            if batch.ndim == 2:
                logits[rows] = batch
            else:
                logits[rows, :width] = batch
        return logits


def onnx_path_of(path: str | os.PathLike, variant: str = "optimized") -> Path:
    """The ONNX file of `variant` in a version folder, or `path` itself when it is an `.onnx`
    file (then `variant` is not consulted)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}. "
                         f"Received: variant={variant!r}")
    given = Path(path)
    if given.is_dir():
        found = [given / name for name in VARIANTS[variant] if (given / name).is_file()]
        if found:
            return found[0]
        what = f"a folder without {VARIANTS[variant][-1]}"
    elif given.is_file():
        if given.suffix == ".onnx":
            return given
        what = "a file that is not .onnx"
    else:
        what = "which does not exist"
    # The path as given, not the file looked for in it: that is the one the user typed.
    raise FileNotFoundError(
        f"Expected an exported version folder holding {VARIANTS[variant][-1]} (variant "
        f"{variant!r}), or an .onnx file. Received: {str(path)!r}, {what}"
    )


def load(path: str | os.PathLike, optimization: str = "all", threads: int = 1,
         variant: str = "optimized") -> Predictor:
    """A `Predictor` for a version folder (e.g. "saved_models/sentiment/1") or an `.onnx` file.

    Args:
        path: the version folder or the `.onnx` file.
        optimization: onnxruntime graph optimization level ("basic" or "all" are checked by
            the parity battery).
        threads: intra-op threads for onnxruntime.
        variant: which file of a version folder: "optimized" (default; `model.onnx` when
            the export has no optimized file), "portable" (`model.onnx`) or "int8".

    Example:
        >>> portable = runtime.load("saved_models/sentiment/1", variant="portable")
        >>> portable.path.name
        'model.onnx'
    """
    return Predictor(onnx_path_of(path, variant), optimization=optimization, threads=threads)
