"""benchmarks/generation_speed.py on a very small model: every path is timed, the five paths
agree on the tokens, and the report shows the rows and the goals."""

import sys

from repo_paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))

import keras_attn as ka  # noqa: E402
from benchmarks import generation_speed  # noqa: E402


def test_generation_speed_rows():
    config = ka.ModelConfig(vocab_size=60, max_len=144, d_model=16, num_heads=2, ff_dim=32,
                            num_layers=1, num_classes=60)
    results = generation_speed.measure_generation_speed(quick=True, config=config)
    assert set(results["paths"]) == {"keras cached", "keras recompute", "onnxruntime cached",
                                     "onnxruntime cached optimized", "onnxruntime recompute"}
    for path in results["paths"].values():
        assert path["tokens_per_s"] > 0 and path["time_to_first_token_ms"] > 0
        assert path["tokens_per_s"] == 128 / path["seconds_per_generation"]
    assert results["same_tokens"]
    report = generation_speed.markdown(results)
    assert "| onnxruntime cached / onnxruntime recompute |" in report
    assert "| onnxruntime cached optimized / onnxruntime cached |" in report
    assert "128 new tokens after a 16-token prompt" in report
