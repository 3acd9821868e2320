"""Smoke test of `benchmarks/serving_load.py`: a very short run completes against all four
servers and writes every figure it promises (the figures themselves are for the README, from a
full run on a quiet machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from repo_paths import REPO_ROOT

ROOT = REPO_ROOT


def test_load_benchmark_runs_and_reports(tmp_path):
    out = tmp_path / "load.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "serving_load.py"), "--quick", "--model",
         "tiny", "--requests", "40", "--memory-requests", "64", "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(out.read_text())
    assert list(results["servers"]) == ["one at a time", "unbatched", "batched",
                                        "batched, 2 ms delay"]
    for levels in results["servers"].values():
        assert list(levels) == ["1", "8", "32"]
        for figures in levels.values():
            assert figures["requests"] == 40
            assert 0 < figures["p50_ms"] <= figures["p99_ms"]
            assert figures["requests_per_s"] > 0
    assert results["memory"]["requests"] == 64
    assert results["memory"]["rss_after_mib"] > 0
    assert set(results["goal"]) == {"throughput_ratio", "p99_ratio"}
    assert "At concurrency 32" in completed.stdout
