"""Smoke test of `benchmarks/run.py --quick`: it completes and writes the JSON it promises.

Timings depend on the machine and whatever else runs on it, so nothing here looks at a
number: only that the run finishes and that every section and goal is present.
"""

import json
import os
import subprocess
import sys

from repo_paths import REPO_ROOT

ROOT = REPO_ROOT

SECTIONS = {"meta", "training", "inference", "roofline", "export", "fusion", "int8", "goals",
            "tokenizer", "training_dropout", "lengths", "generation", "backends", "streaming"}
# training, 2x batch-32 inference, batch-1 latency, 2x int8, size, training at dropout 0.1,
# real lengths: training tokens/s, train wall time, time to accuracy, prediction
GOALS = 12


def test_quick_benchmark_completes_and_writes_every_section(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--json", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "| goal | target | measured | result |" in completed.stdout

    results = json.loads(out.read_text())
    assert SECTIONS <= set(results)
    assert results["meta"]["quick"] is True
    assert set(results["training"]) == {"keras_attn", "reference"}
    for model in [*results["training"].values(), *results["training_dropout"].values()]:
        assert set(model) == {"jit off", "jit on"}
    lengths = results["lengths"]
    assert set(lengths["training"]) == {"64", "256"}
    for row in lengths["training"].values():
        assert {"pad to longest", "by length", "speedup", "shapes"} <= set(row)
    assert {"whole file", "by length", "speedup"} <= set(lengths["prediction"])
    assert "time_to_accuracy" in lengths
    assert "Real lengths:" in completed.stdout
    inference = results["inference"]
    assert {"paths", "parity", "best_batch32", "best_batch1", "reference_best_batch32"} <= set(
        inference)
    for name in ("Keras call", "SavedModel serving_default", "ORT portable, default",
                 "ORT optimized, 1 thr, all", "ORT int8 optimized, 1 thr, all",
                 "reference Keras-exported ONNX, default"):
        assert {"batch1_ms", "batch32_tokens_per_s"} <= set(inference["paths"][name])
    assert any(path["kind"] == "int8" for path in inference["paths"].values())
    assert {"ok", "pairs"} <= set(inference["parity"])
    assert {"peak_gflops", "forward_flops_per_token", "training_fraction_of_peak",
            "inference_fraction_of_peak"} <= set(results["roofline"])
    assert {"seconds", "onnx_bytes", "params", "onnx_size_ratio", "onnxruntime_files"} <= set(
        results["export"])
    # the shipped optimized file is what is timed, its fused ops visible in the op counts
    assert results["export"]["onnxruntime_files"]["model.optimized.onnx"]["shipped"]
    assert {"portable", "optimized"} <= set(results["fusion"])
    assert results["fusion"]["optimized"]["ops_before"]["com.microsoft.Attention"] == 1
    for graph in results["fusion"].values():
        assert {"rewrites", "ops_before", "ops_after"} <= set(graph)
    assert {"best", "speedup_vs_best_fp32", "accuracy", "shipped_int8_timed"} <= set(
        results["int8"])
    assert len(results["goals"]) == GOALS
    assert "## Tokenizer throughput" in completed.stdout
    names = {f"tokenizers {model}" for model in ("wordpiece", "bpe", "unigram", "word")}
    assert names < set(results["tokenizer"]["tokenizers"])  # and keras-attn 0.1.0's
    for row in results["tokenizer"]["tokenizers"].values():
        assert {"texts_per_s", "mb_per_s", "vs_legacy"} <= set(row)
    for goal in results["goals"]:
        assert {"goal", "target", "measured", "met", "detail"} <= set(goal)


def test_streaming_memory_child_reports_its_own_peak_not_its_parents():
    """The streaming benchmark's children read their peak RSS from `VmHWM`. `getrusage`'s
    `ru_maxrss` keeps the parent's peak through fork and exec on Linux: every child of the
    4.5 GB full benchmark run reported 4,489 MB, whatever it held."""
    ballast = bytearray(b"\x01") * (512 * 2**20)  # every page written, so resident
    probe = ("from benchmarks.streaming_memory import proc_status_mib; "
             "print(proc_status_mib('VmHWM'))")
    completed = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                               text=True, check=True)
    assert len(ballast) == 512 * 2**20
    assert float(completed.stdout) < 256, completed.stdout
