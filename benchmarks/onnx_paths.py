"""The onnxruntime paths the benchmark compares: graph variants, session settings, int8.

A *path* is a graph run under session settings (threads, graph optimization level, spinning,
or a model optimized offline and loaded with optimizations off). The graphs are the files an
export ships (`model.onnx`, `model.optimized.onnx`, `model.int8.onnx`), timed as shipped,
and variants rewritten here with a subset of the shipped rules (`export.formats.optimize`) or with
more rules on top (`benchmarks.fusions`), to show what each rewrite is worth.
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
from export import runtime
from export.artifact.manifest import INT8_FILENAME, ONNX_FILENAME, OPTIMIZED_FILENAME, read_manifest
from export.artifact.representative_ids import load_representative_ids
from export.formats import optimize
from export.runtime.predictor import EXACT_INT8_MATMUL
from export.verification.cases import calibration_data

LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

# Graph variants: which rewrite stages each applies to model.onnx. "portable" and "optimized"
# are the shipped files, read from the export; the others are rewritten here. "optimized"
# keeps the dense layers as MatMul (what quantize_dynamic quantizes best); "+gemm" turns them
# into Gemms; "+skip_ln" adds SkipLayerNormalization. The benchmark keeps the fastest.
# Each is quantized to int8 the way the export quantizes model.int8.onnx
# (`export.formats.optimize.quantize_int8`: static activation scales, calibrated).
STAGES = {**optimize.STAGES, **fusions.STAGES}
GRAPHS = {
    "portable": (),
    "layer_norm": ("tensordot", "layer_norm"),
    "optimized": tuple(optimize.STAGES),
    "optimized+gemm": (*optimize.STAGES, "ffn_gemm", "dense_gemm"),
    "optimized+skip_ln": (*optimize.STAGES, "skip_layer_norm"),
}
SHIPPED = {"portable": ONNX_FILENAME, "optimized": OPTIMIZED_FILENAME}


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
    options.add_session_config_entry(*EXACT_INT8_MATMUL)  # as the predictor runs them
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


def write_graphs(version_dir: Path, folder: Path, names=tuple(GRAPHS)) -> dict[str, dict]:
    """The graph variants of an exported version: {name: {"path", "fusions", "seconds"}}.

    The shipped ones are the export's own files (their rewrite counts from its manifest,
    seconds None: the export built them); the others are rewritten from its model.onnx into
    `folder`.

    Raises:
        FileNotFoundError: the export shipped no model.optimized.onnx; says why it did not.
    """
    shipped = read_manifest(version_dir).get("onnxruntime_files", {})
    proto = onnx.load(os.fspath(version_dir / ONNX_FILENAME))
    graphs = {}
    for name in names:
        if name in SHIPPED:
            path = version_dir / SHIPPED[name]
            if not path.is_file():
                raise FileNotFoundError(f"The export shipped no {path.name}: "
                                        f"{shipped.get(path.name, {}).get('reason')}")
            recorded = shipped.get(path.name, {}).get("rewrites", {})  # the manifest sorts
            counts = {stage: recorded[stage] for stage in STAGES if stage in recorded}
            graphs[name] = {"path": path, "fusions": counts, "seconds": None}
            continue
        start = time.perf_counter()
        rewritten, counts = optimize.rewrite(proto, {stage: STAGES[stage]
                                                     for stage in GRAPHS[name]})
        path = folder / f"{name.replace('+', '_')}.onnx"
        onnx.save(rewritten, os.fspath(path))
        graphs[name] = {"path": path, "fusions": counts, "seconds": time.perf_counter() - start}
    return graphs


def int8_graphs(version_dir: Path, graphs: dict[str, dict], folder: Path,
                names: tuple[str, ...]) -> dict[str, dict]:
    """int8 versions of the named graph variants: {name: {"path", "shipped", "data"}}.

    "optimized" is the export's own model.int8.onnx when it shipped one (it passed its
    accuracy bound and its row-independence check); otherwise it, and every other, is
    quantized here the same way (`export.formats.optimize.quantize_int8`), calibrated on the data
    the export used (its representative_ids.npy, else the parity battery's ids), and "shipped"
    is False.
    """
    exported = runtime.load(version_dir, variant="portable")
    calibration, data = calibration_data(exported.max_len, exported.vocab_size,
                                         load_representative_ids(version_dir))
    int8 = {}
    for name in names:
        path = version_dir / INT8_FILENAME
        shipped = name == "optimized" and path.is_file()
        if not shipped:
            path = folder / f"{name.replace('+', '_')}_int8.onnx"
            optimize.quantize_int8(graphs[name]["path"], path, calibration)
        int8[name] = {"path": path, "shipped": shipped, "data": data}
    return int8


def accuracy(sess: ort.InferenceSession, token_ids: np.ndarray, labels: np.ndarray,
             batch: int = 256) -> float:
    """Percentage of rows whose argmax logit is the label."""
    run = runner(sess)
    predictions = np.concatenate([run(token_ids[i:i + batch]).argmax(-1)
                                  for i in range(0, len(token_ids), batch)])
    return float(100.0 * np.mean(predictions == labels))
