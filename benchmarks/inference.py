"""Inference: latency at batch 1 and tokens/s at batch 32 of every path, in the same rounds.

Paths: the Keras call, the SavedModel's `serving_default`, our ONNX under onnxruntime for
every graph variant (the shipped model.onnx and model.optimized.onnx among them) x session
setting (and the optimized graph optimized offline by onnxruntime, loaded with optimizations
off), int8 variants, and the keras.io reference exported by Keras's own
`model.export(format="onnx")`. Every fp32 path of ours runs the export's parity battery
against Keras first; one that fails is reported and never chosen as "best".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks import onnx_paths
from benchmarks.onnx_paths import Setting
from benchmarks.timing import interleaved_best, tokens_per_second
from export.formats.savedmodel import savedmodel_runtime
from export.formats.tf_function import keras_runtime
from export.verification.verifier import check_parity

ORT = "ORT"


def settings_grid(quick: bool) -> list[Setting]:
    """Default options, then 1 thread and every core at the full and the basic level."""
    cores = os.cpu_count() or 1
    grid = [Setting(), Setting(1, "all"), Setting(cores, "all")]
    if not quick:
        grid += [Setting(cores, "basic"), Setting(cores, "all", spinning=False)]
    return grid


def ours_contenders(graphs: dict[str, dict], offline: dict[str, Path], int8: dict[str, Path],
                    quick: bool) -> dict[str, tuple[Path, Setting, str]]:
    """name -> (onnx file, setting, kind) for our fp32 graphs, offline-optimized files and
    int8 files. kind is "fp32" or "int8"."""
    cores = os.cpu_count() or 1
    paths = {}
    for graph, info in graphs.items():
        for setting in settings_grid(quick):
            if setting == Setting() and graph != "portable":
                continue  # "default settings" is about the export as written
            paths[f"{ORT} {graph}, {setting.name}"] = (info["path"], setting, "fp32")
    for graph, path in offline.items():
        paths[f"{ORT} {graph} + ORT's optimization offline, {cores} thr"] = (
            path, Setting(cores, "disabled"), "fp32")
    for graph, path in int8.items():
        for setting in (Setting(1, "all"), Setting(cores, "all")):
            paths[f"{ORT} int8 {graph}, {setting.name}"] = (path, setting, "int8")
    return paths


def measure_inference(model, savedmodel_dir: Path, ours: dict[str, tuple[Path, Setting, str]],
                      reference_onnx: Path, max_len: int, vocab_size: int,
                      budget1: tuple[int, int], budget32: tuple[int, int], seed: int = 0) -> dict:
    """Times every path; returns {"paths": {name: {...}}, "parity": report dict}.

    budget1 and budget32 are (rounds, calls per round) at batch 1 and batch 32.
    """
    sessions = {name: onnx_paths.session(path, setting)
                for name, (path, setting, _) in ours.items()}
    fp32 = [name for name, (_, _, kind) in ours.items() if kind == "fp32"]
    parity = check_parity(model, {name: onnx_paths.runner(sessions[name]) for name in fp32},
                          max_len, vocab_size)
    parity_by_name = {pair.pair.removeprefix("keras vs "): pair for pair in parity.pairs}

    runners: dict[str, Callable[[np.ndarray], object]] = {
        "Keras call": keras_runtime(model),
        "SavedModel serving_default": savedmodel_runtime(savedmodel_dir),
    }
    runners.update({name: onnx_paths.runner(sess) for name, sess in sessions.items()})
    for setting in settings_grid(quick=True):  # default, 1 thread, every core
        runners[f"reference Keras-exported ONNX, {setting.name}"] = onnx_paths.runner(
            onnx_paths.session(reference_onnx, setting))

    rng = np.random.default_rng(seed)
    batches = {size: rng.integers(1, vocab_size, (size, max_len), dtype=np.int32)
               for size in (1, 32)}
    seconds1 = interleaved_best({n: _bind(r, batches[1]) for n, r in runners.items()},
                                *budget1)
    seconds32 = interleaved_best({n: _bind(r, batches[32]) for n, r in runners.items()},
                                 *budget32)
    paths = {}
    for name in runners:
        pair = parity_by_name.get(name)
        paths[name] = {
            "batch1_ms": 1e3 * seconds1[name],
            "batch32_tokens_per_s": tokens_per_second(seconds32[name], 32, max_len),
            "kind": ours[name][2] if name in ours else ("reference" if name.startswith(
                "reference") else "tensorflow"),
            "parity_max_abs": None if pair is None else pair.max_abs_diff,
            "parity_ok": None if pair is None else pair.passed,
        }
    return {"paths": paths, "parity": parity.to_dict()}


def _bind(run: Callable[[np.ndarray], object], token_ids: np.ndarray) -> Callable[[], object]:
    return lambda: run(token_ids)


def best(paths: dict[str, dict], kind: str, metric: str) -> dict:
    """The best path of a kind ("fp32", "int8", "reference") that passed parity (or has none):
    the highest batch-32 tokens/s, or the lowest batch-1 latency."""
    eligible = {n: p for n, p in paths.items() if p["kind"] == kind and p["parity_ok"] in (
        True, None)}
    if metric == "batch32":
        name = max(eligible, key=lambda n: eligible[n]["batch32_tokens_per_s"])
    else:
        name = min(eligible, key=lambda n: eligible[n]["batch1_ms"])
    return {"name": name, "tokens_per_s": eligible[name]["batch32_tokens_per_s"],
            "batch1_ms": eligible[name]["batch1_ms"]}
