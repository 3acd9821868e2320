"""Generation speed: tokens/s with the key/value cache against a full recompute per token.

    python benchmarks/generation_speed.py [--quick] [--json PATH]

A language model with random weights decodes greedily 128 new tokens after a 16-token prompt
(no end-of-text: every run makes exactly 128 tokens), five ways:

- Keras, cached: `keras_attn.models.cached_decoder.CachedDecoder` (one traced graph per step);
- Keras, recompute: the whole model (one traced graph) on the whole sequence at every step;
- onnxruntime, cached: the export's `decoder.onnx` (`export.runtime.decoder_step.CachedStep`);
- onnxruntime, cached optimized: the export's `decoder.optimized.onnx` (what `generate` on an
  export loads; `export.verification.decoder_parity`);
- onnxruntime, recompute: the export's `model.onnx` on the whole sequence at every step
  (`export.runtime.generation.RecomputeStep`).

Each is timed in interleaved rounds, best round kept (`benchmarks.timing`). Time to first
token: the prompt's step (prefill) and the choice of the first token. onnxruntime runs with 1
intra-op thread, as `export.runtime.predictor` does by default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, when run as a script

import numpy as np  # noqa: E402

import keras_attn as ka  # noqa: E402
from benchmarks.timing import interleaved_best  # noqa: E402

PROMPT_TOKENS, NEW_TOKENS = 16, 128
CONFIG = ka.ModelConfig(vocab_size=8000, max_len=PROMPT_TOKENS + NEW_TOKENS, d_model=128,
                        num_heads=4, ff_dim=512, num_layers=2, num_classes=8000)
QUICK_CONFIG = ka.ModelConfig(vocab_size=1000, max_len=PROMPT_TOKENS + NEW_TOKENS, d_model=64,
                              num_heads=2, ff_dim=128, num_layers=1, num_classes=1000)
GOALS = {"onnxruntime cached / onnxruntime recompute": 5.0,
         "onnxruntime cached / keras cached": 3.0}


def _contenders(folder: Path, config: ka.ModelConfig) -> dict:
    """name -> (step, empty-cache factory) for the five ways of running a step."""
    import keras
    import tensorflow as tf

    from export import runtime
    from export.artifact.manifest import DECODER_FILENAME, ONNX_FILENAME, OPTIMIZED_DECODER_FILENAME
    from export.artifact.metadata import encode_metadata
    from export.formats.decoder_onnx import convert_decoder
    from export.formats.onnx import convert_to_onnx, save_onnx
    from export.formats.optimize import rewrite
    from export.runtime.decoder_step import CachedStep
    from export.runtime.generation import RecomputeStep
    from keras_attn.models.cached_decoder import CachedDecoder

    keras.utils.set_random_seed(0)
    model = ka.build_language_model(config)
    metadata = encode_metadata(config.to_dict(), "language_model", 17, ka.__version__, None)
    decoder_proto = convert_decoder(model, metadata, 17)
    save_onnx(decoder_proto, folder / DECODER_FILENAME)
    save_onnx(rewrite(decoder_proto)[0], folder / OPTIMIZED_DECODER_FILENAME)
    save_onnx(convert_to_onnx(model, "language_model", metadata, 17), folder / ONNX_FILENAME)
    decoder = CachedDecoder(model)
    full = tf.function(lambda ids: model(ids, training=False),
                       input_signature=[tf.TensorSpec([None, None], tf.int64)])

    def keras_recompute(token_ids, position_ids, ids):
        ids = np.concatenate([ids, token_ids], axis=1)
        return full(ids).numpy()[:, -token_ids.shape[1]:], ids

    onnx_cached = CachedStep(folder / DECODER_FILENAME)
    onnx_optimized = CachedStep(folder / OPTIMIZED_DECODER_FILENAME)
    onnx_recompute = RecomputeStep(runtime.load(folder / ONNX_FILENAME))
    no_ids = lambda: np.zeros((1, 0), dtype=np.int64)  # noqa: E731
    return {"keras cached": (decoder.step, decoder.empty_cache),
            "keras recompute": (keras_recompute, no_ids),
            "onnxruntime cached": (onnx_cached, onnx_cached.empty_cache),
            "onnxruntime cached optimized": (onnx_optimized, onnx_optimized.empty_cache),
            "onnxruntime recompute": (onnx_recompute, onnx_recompute.empty_cache)}


def measure_generation_speed(quick: bool = False, config: ka.ModelConfig | None = None) -> dict:
    """Tokens/s and time to first token of each way; the cache's speedups; the goals judged.

    Args:
        quick: fewer rounds, and `QUICK_CONFIG` unless `config` is given (else `CONFIG`).
        config: the language model's shape; max_len must be at least 144.

    Returns:
        {"setup": ..., "paths": {name: {"tokens_per_s", "time_to_first_token_ms",
        "seconds_per_generation"}}, "ratios": {...}, "goals": {...}, "same_tokens": bool}.
    """
    from export.runtime.sampling import generate_ids

    config = config or (QUICK_CONFIG if quick else CONFIG)
    prompt = np.random.default_rng(0).integers(1, config.vocab_size, PROMPT_TOKENS).tolist()
    rounds = 2 if quick else 4
    with tempfile.TemporaryDirectory(prefix="keras_attn_generation_") as tmp:
        contenders = _contenders(Path(tmp), config)

        def run(step, empty, count):
            return lambda: generate_ids(step, empty(), prompt, config.max_len, None, count)

        tokens = {name: run(step, empty, NEW_TOKENS)().new_ids
                  for name, (step, empty) in contenders.items()}
        whole = interleaved_best({name: run(step, empty, NEW_TOKENS)
                                  for name, (step, empty) in contenders.items()},
                                 rounds=rounds, calls=1, warmup=1)
        first = interleaved_best({name: run(step, empty, 1)
                                  for name, (step, empty) in contenders.items()},
                                 rounds=rounds * 3, calls=1, warmup=1)
    paths = {name: {"tokens_per_s": NEW_TOKENS / whole[name],
                    "seconds_per_generation": whole[name],
                    "time_to_first_token_ms": 1000 * first[name]} for name in contenders}
    rate = {name: path["tokens_per_s"] for name, path in paths.items()}
    ratios = {"keras cached / keras recompute": rate["keras cached"] / rate["keras recompute"],
              "onnxruntime cached / onnxruntime recompute":
                  rate["onnxruntime cached"] / rate["onnxruntime recompute"],
              "onnxruntime cached / keras cached":
                  rate["onnxruntime cached"] / rate["keras cached"],
              "onnxruntime cached optimized / onnxruntime cached":
                  rate["onnxruntime cached optimized"] / rate["onnxruntime cached"]}
    return {"setup": {"prompt_tokens": PROMPT_TOKENS, "new_tokens": NEW_TOKENS,
                      "config": config.to_dict(), "rounds": rounds, "onnxruntime_threads": 1},
            "paths": paths, "ratios": ratios,
            "goals": {name: {"goal": goal, "measured": ratios[name],
                             "met": ratios[name] >= goal} for name, goal in GOALS.items()},
            "same_tokens": len({tuple(ids) for ids in tokens.values()}) == 1}


def markdown(results: dict) -> str:
    """The generation rows of the benchmark report."""
    setup = results["setup"]
    config = setup["config"]
    lines = [f"### Generation: {setup['new_tokens']} new tokens after a {setup['prompt_tokens']}"
             f"-token prompt (greedy; d_model {config['d_model']}, {config['num_layers']} "
             f"blocks, vocab {config['vocab_size']}; best of {setup['rounds']} rounds)", "",
             "| path | tokens/s | time to first token | s per generation |",
             "|---|---:|---:|---:|"]
    for name, path in results["paths"].items():
        lines.append(f"| {name} | {path['tokens_per_s']:.0f} | "
                     f"{path['time_to_first_token_ms']:.1f} ms | "
                     f"{path['seconds_per_generation']:.3f} |")
    lines += ["", "| ratio | measured | goal |", "|---|---:|---:|"]
    for name, value in results["ratios"].items():
        goal = results["goals"].get(name)
        judged = f">= {goal['goal']:.0f}x: {'met' if goal['met'] else 'NOT met'}" if goal else ""
        lines.append(f"| {name} | {value:.2f}x | {judged} |")
    lines += ["", f"All {len(results['paths'])} paths chose the same {setup['new_tokens']} tokens: "
              f"{results['same_tokens']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = measure_generation_speed(args.quick)
    results["seconds"] = time.perf_counter() - start
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
