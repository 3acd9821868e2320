"""The onnxruntime paths the benchmark compares: graph variants, session settings, int8.

A *path* is a graph (the export as tf2onnx wrote it, or rewritten by `benchmarks.fusions`)
run under session settings (threads, graph optimization level, spinning, or a model
optimized offline and loaded with optimizations off).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from benchmarks import fusions

LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

# Graph variants: which `fusions` stages each applies. "fused" keeps the dense layers as
# MatMul (what quantize_dynamic quantizes best); "+gemm" turns them into Gemms; "+skip_ln"
# adds SkipLayerNormalization. Each is timed; the benchmark keeps whichever is fastest.
GRAPHS = {
    "plain": (),
    "layer_norm": ("tensordot", "layer_norm"),
    "fused": ("tensordot", "layer_norm", "attention"),
    "fused+gemm": ("tensordot", "layer_norm", "attention", "ffn_gemm", "dense_gemm"),
    "fused+skip_ln": ("tensordot", "layer_norm", "attention", "skip_layer_norm"),
}


@dataclasses.dataclass(frozen=True)
class Setting:
    """Session options. `threads=None` and the rest left alone: onnxruntime's defaults."""

    threads: int | None = None
    level: str = "all"
    spinning: bool = True

    @property
    def name(self) -> str:
        if self == Setting():
            return "default"
        spin = "" if self.spinning else ", no spin"
        return f"{self.threads or 'default'} thr, {self.level}{spin}"


def session(path: str | os.PathLike, setting: Setting = Setting(),
            optimized_out: str | os.PathLike | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session; with `optimized_out`, also writes the optimized graph."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if setting.threads is not None:
        options.intra_op_num_threads = setting.threads
    options.graph_optimization_level = LEVELS[setting.level]
    if not setting.spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_out is not None:
        options.optimized_model_filepath = os.fspath(optimized_out)
    return ort.InferenceSession(os.fspath(path), sess_options=options,
                                providers=["CPUExecutionProvider"])


def runner(sess: ort.InferenceSession):
    """The session as a function: int32 token ids -> float32 logits."""
    input_name = sess.get_inputs()[0].name
    return lambda token_ids: sess.run(None, {input_name: token_ids})[0]


def op_counts(path: str | os.PathLike) -> dict[str, int]:
    """{op type: count}, most frequent first; ops outside the ONNX domain as domain.op."""
    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    counts = collections.Counter(
        f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        for node in graph.node)
    return dict(counts.most_common())


def optimize_offline(path: Path, out: Path, level: str = "all") -> tuple[Path, float]:
    """Writes onnxruntime's load-time optimization of `path` to `out`; returns (out, seconds
    the optimizing load took)."""
    start = time.perf_counter()
    session(path, Setting(level=level), optimized_out=out)
    return out, time.perf_counter() - start


def load_seconds(path: Path, setting: Setting, rounds: int = 3) -> float:
    """Best-of-`rounds` time to create a session (what a server pays per model load)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        session(path, setting)
        best = min(best, time.perf_counter() - start)
    return best


def write_graphs(onnx_path: Path, folder: Path, names=tuple(GRAPHS)) -> dict[str, dict]:
    """Writes each graph variant into `folder`: {name: {"path", "fusions", "seconds"}}."""
    proto = onnx.load(os.fspath(onnx_path))
    graphs = {}
    for name in names:
        start = time.perf_counter()
        if GRAPHS[name]:
            rewritten, counts = fusions.fuse(proto, GRAPHS[name])
            path = folder / f"{name.replace('+', '_')}.onnx"
            onnx.save(rewritten, os.fspath(path))
        else:
            path, counts = onnx_path, {}
        graphs[name] = {"path": path, "fusions": counts,
                        "seconds": time.perf_counter() - start}
    return graphs


def quantize(source: Path, out: Path) -> Path:
    """Dynamic int8 quantization (weights int8 per tensor, activations quantized on the fly)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(os.fspath(source), os.fspath(out), weight_type=QuantType.QInt8)
    return out


def accuracy(sess: ort.InferenceSession, token_ids: np.ndarray, labels: np.ndarray,
             batch: int = 256) -> float:
    """Percentage of rows whose argmax logit is the label."""
    run = runner(sess)
    predictions = np.concatenate([run(token_ids[i:i + batch]).argmax(-1)
                                  for i in range(0, len(token_ids), batch)])
    return float(100.0 * np.mean(predictions == labels))
