"""keras_attn against Keras's own attention, on this machine, in one process.

    python benchmarks/run.py [--quick] [--json PATH] [--config small|tiny]

Measures, in one run so that every figure is a ratio against a reference timed beside it:

1. training tokens/s of steady-state `model.fit` steps, jit_compile off and on, for
   keras_attn's classifier and the keras.io MultiHeadAttention reference (`reference.py`);
2. inference latency at batch 1 and tokens/s at batch 32: the Keras call, the SavedModel,
   the ONNX files the export ships (model.onnx, model.optimized.onnx, model.int8.onnx) and
   more graph rewrites under onnxruntime x session settings (`inference.py`), and the
   reference exported by `model.export(format="onnx")`;
3. the roofline: NumPy's fp32 matmul peak measured here, and the fraction of it reached;
4. the export's time, and the ONNX file's size against params x 4 bytes;
5. op-type counts before and after onnxruntime's load-time optimization;
6. tokenizer throughput on real text, beside keras-attn 0.1.0's tokenizer (`tokenizer_speed.py`);
7. training at dropout 0.1 beside 0.0, and training and prediction on real text lengths, by
   length against pad to longest (`lengths.py`);
8. generation tokens/s and time to first token, with the key/value cache against a full
   recompute per token, in Keras and onnxruntime (`generation_speed.py`);
9. peak memory of the training data pipeline at 10,000 and 1,000,000 texts, in memory against
   streamed from the file (`streaming_memory.py`; --quick: a smoke run on 1,000 texts).

It prints a markdown report with the issue's goals judged from this run's ratios, and writes
the numbers as JSON with --json. --quick (tiny config, few steps) takes about two minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, when run as a script

import keras  # noqa: E402

import keras_attn as ka  # noqa: E402
from benchmarks import (  # noqa: E402
    backend_speed,
    generation_speed,
    inference,
    lengths,
    onnx_paths,
    report,
    streaming_memory,
    timing,
    tokenizer_speed,
)
from benchmarks.training_speed import measure_training  # noqa: E402

CONFIGS = {
    "small": ka.ModelConfig(vocab_size=8000, max_len=128, d_model=128, num_heads=4, ff_dim=512,
                            num_layers=2, num_classes=2),
    "tiny": ka.ModelConfig(vocab_size=1000, max_len=64, d_model=64, num_heads=2, ff_dim=128,
                           num_layers=1, num_classes=2),
}


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long each part runs. Rounds are interleaved and each contender keeps its best
    round, so many short rounds beat few long ones on a machine shared with other work."""

    train_rounds: int
    train_steps: int
    rounds32: int
    calls32: int
    rounds1: int
    calls1: int
    peak_rounds: int
    int8_accuracy: bool


BUDGETS = {
    "quick": Budget(train_rounds=2, train_steps=4, rounds32=4, calls32=2, rounds1=6, calls1=5,
                    peak_rounds=3, int8_accuracy=False),
    "full": Budget(train_rounds=5, train_steps=10, rounds32=12, calls32=2, rounds1=30,
                   calls1=5, peak_rounds=8, int8_accuracy=True),
}
# The graph variants timed (see onnx_paths.GRAPHS), and the ones quantized to int8 ("optimized"
# is the export's model.int8.onnx when it shipped one). Older onnxruntimes' quantize_dynamic
# left Gemm in fp32; 1.32 turns it into MatMulInteger + Add, so the Gemm graph is quantized
# and timed too.
FP32_GRAPHS = {"quick": ("portable", "optimized", "optimized+gemm"),
               "full": tuple(onnx_paths.GRAPHS)}
INT8_GRAPHS = ("portable", "optimized", "optimized+gemm")


def _machine() -> str:
    """E.g. "2 cores (AMD EPYC), Linux"."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    model = names[0] if names else (platform.processor() or "unknown CPU")
    return f"{os.cpu_count()} cores ({model}), {platform.system()}"


def _export(models: dict[str, keras.Model], folder: Path) -> dict:
    from export import export_model

    start = time.perf_counter()
    with warnings.catch_warnings():  # a file left out is reported from the manifest
        warnings.simplefilter("ignore", RuntimeWarning)
        result = export_model(models["keras_attn"], folder / "ours")
    seconds = time.perf_counter() - start
    reference_onnx = folder / "reference.onnx"
    start = time.perf_counter()
    models["reference"].export(str(reference_onnx), format="onnx", verbose=False)
    reference_seconds = time.perf_counter() - start
    params = models["keras_attn"].count_params()
    reference_params = models["reference"].count_params()
    onnx_bytes = result.onnx_path.stat().st_size
    shipped = {name: {**entry, "bytes": (result.path / name).stat().st_size}
                   if entry["shipped"] else entry
               for name, entry in result.onnxruntime_files.items()}
    return {"seconds": seconds, "onnx_bytes": onnx_bytes, "params": params,
            "onnx_size_ratio": onnx_bytes / (4 * params), "onnxruntime_files": shipped,
            "savedmodel_dir": str(result.path), "reference_seconds": reference_seconds,
            "reference_onnx_path": str(reference_onnx), "reference_params": reference_params,
            "reference_onnx_bytes": reference_onnx.stat().st_size}


def run(config_name: str, quick: bool) -> dict:
    """The whole benchmark; returns the results (also what --json writes)."""
    config, budget = CONFIGS[config_name], BUDGETS["quick" if quick else "full"]
    mode = "quick" if quick else "full"
    results: dict = {"meta": {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": _machine(), "cores": os.cpu_count(), "quick": quick,
        "config_name": config_name, "config": config.to_dict(), "max_len": config.max_len,
        "versions": _versions()}}
    peaks = [timing.matmul_peak(rounds=budget.peak_rounds)]
    results["training"], models = measure_training(config, budget.train_rounds,
                                                   budget.train_steps)
    # The CLI's and keras.io's dropout: where each model draws its random numbers.
    results["training_dropout"], _ = measure_training(
        dataclasses.replace(config, dropout=0.1), budget.train_rounds, budget.train_steps)
    with tempfile.TemporaryDirectory(prefix="keras_attn_bench_") as tmp:
        folder = Path(tmp)
        exported = _export(models, folder)
        version_dir = Path(exported["savedmodel_dir"])
        graphs = onnx_paths.write_graphs(version_dir, folder, FP32_GRAPHS[mode])
        offline, fusion = {}, {}
        for name, graph in {**graphs, "reference (Keras-exported)": {
                "path": Path(exported["reference_onnx_path"]), "fusions": {}}}.items():
            optimized, _ = onnx_paths.optimize_offline(
                graph["path"], folder / f"{name.split()[0].replace('+', '_')}_ort.onnx")
            if not name.startswith("reference"):
                offline[name] = optimized
            fusion[name] = {"rewrites": {k: v for k, v in graph["fusions"].items() if v},
                            "ops_before": onnx_paths.op_counts(graph["path"]),
                            "ops_after": onnx_paths.op_counts(optimized)}
        int8 = onnx_paths.int8_graphs(version_dir, graphs, folder, INT8_GRAPHS)
        ours = inference.ours_contenders(graphs, {n: offline[n] for n in ("optimized",)},
                                         {name: info["path"] for name, info in int8.items()},
                                         quick)
        measured = inference.measure_inference(
            models["keras_attn"], version_dir, ours,
            Path(exported["reference_onnx_path"]), config.max_len, config.vocab_size,
            (budget.rounds1, budget.calls1), (budget.rounds32, budget.calls32))
        # What an offline-optimized file saves: the optimizing work at session creation.
        load_seconds = {name: onnx_paths.load_seconds(path, setting)
                        for name, (path, setting, _) in ours.items()
                        if name.endswith(f"{os.cpu_count()} thr, all") or "offline" in name}
        results["lengths"] = lengths.measure(quick, version_dir, budget.rounds32)
        int8_accuracy = None
        if budget.int8_accuracy:  # trains a demo model: too slow for --quick
            from benchmarks.int8_accuracy import int8_accuracy as measure_accuracy

            (folder / "demo").mkdir()
            int8_accuracy = measure_accuracy(folder / "demo", INT8_GRAPHS)
    peaks.append(timing.matmul_peak(rounds=budget.peak_rounds))
    results["export"] = {k: v for k, v in exported.items() if not k.endswith(("_path", "_dir"))}
    results["fusion"] = fusion
    results["inference"] = _summarise(measured, results, max(peaks), config, int8_accuracy)
    results["int8"]["shipped_int8_timed"] = int8["optimized"]["shipped"]
    results["inference"]["session_load_seconds"] = load_seconds
    results["goals"] = report.judge_goals(results)
    results["tokenizer"] = tokenizer_speed.measure_tokenizer_speed(quick)
    results["generation"] = generation_speed.measure_generation_speed(quick)
    results["backends"] = backend_speed.measure_backend_speed(config, quick)
    results["streaming"] = streaming_memory.measure(quick)
    return results


def _summarise(measured: dict, results: dict, peak: float, config, accuracy: dict | None):
    """Adds the best paths and the roofline to `results`; returns the inference section."""
    flops = timing.forward_flops_per_token(config)
    paths = measured["paths"]
    for path in paths.values():
        path["fraction_of_peak"] = path["batch32_tokens_per_s"] * flops / peak
    section = {
        "paths": paths, "parity": measured["parity"],
        "best_batch32": inference.best(paths, "fp32", "batch32"),
        "best_batch1": inference.best(paths, "fp32", "batch1"),
        "reference_best_batch32": inference.best(paths, "reference", "batch32"),
        "reference_default": paths["reference Keras-exported ONNX, default"],
        "ours_default": paths[f"{inference.ORT} portable, default"],
    }
    training = results["training"]
    results["roofline"] = {
        "peak_gflops": peak / 1e9, "forward_flops_per_token": flops,
        "training_fraction_of_peak": {name: 3 * flops * max(training[name].values()) / peak
                                      for name in training},
        "inference_fraction_of_peak": {
            "ours_best": section["best_batch32"]["tokens_per_s"] * flops / peak,
            "reference_best": section["reference_best_batch32"]["tokens_per_s"] * flops / peak},
    }
    best_int8 = inference.best(paths, "int8", "batch32")
    int8 = {"best": best_int8,
            "speedup_vs_best_fp32": best_int8["tokens_per_s"] / section["best_batch32"][
                "tokens_per_s"],
            "speedup_vs_default_fp32": best_int8["tokens_per_s"] / section["ours_default"][
                "batch32_tokens_per_s"], "accuracy": None}
    if accuracy is not None:
        graph = best_int8["name"].split(" int8 ")[1].split(",")[0]
        int8["accuracy"] = {"graph": graph, "fp32": accuracy[f"{graph} fp32"],
                            "int8": accuracy[f"{graph} int8"], "keras": accuracy["keras"],
                            "gap_points": accuracy[f"{graph} fp32"] - accuracy[f"{graph} int8"],
                            "setup": accuracy["setup"], "export_int8": accuracy["export_int8"],
                            "scores": {k: v for k, v in accuracy.items()
                                       if k not in ("keras", "setup", "export_int8")}}
    results["int8"] = int8
    return section


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    return {"keras": keras.__version__, "tensorflow": tf.__version__,
            "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
            "tf2onnx": tf2onnx.__version__, "keras_attn": ka.__version__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny config, few steps: a smoke run of about two minutes")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--config", choices=sorted(CONFIGS),
                        help="model size (default: small, or tiny with --quick)")
    args = parser.parse_args(argv)
    config_name = args.config or ("tiny" if args.quick else "small")
    start = time.perf_counter()
    results = run(config_name, args.quick)
    results["meta"]["seconds"] = time.perf_counter() - start
    print(report.markdown(results))
    print(tokenizer_speed.markdown(results["tokenizer"]))
    print(generation_speed.markdown(results["generation"]))
    print(backend_speed.markdown(results["backends"]))
    print(streaming_memory.markdown(results["streaming"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
