"""Training tokens/s of keras_attn's classifier on each installed Keras backend.

A process has one backend, so each backend runs in its own child process
(`python -m benchmarks.backend_speed BACKEND CONFIG_JSON ROUNDS STEPS`), one after another, at
the same config, the CLI's default dropout (`TrainSettings().dropout`) and the same batches.
XLA off and on for TensorFlow and JAX; torch trains eagerly only (its jit_compile is
torch.compile, minutes of compiling on a CPU). Each child keeps its best round
(`benchmarks.training_speed`); the children do not interleave, so load from other work on the
machine during one child's turn lowers that backend's number.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")


def measure_backend_speed(config, quick: bool) -> dict:
    """{backend: {"jit off": tokens/s, "jit on": tokens/s (not torch)}} for every installed
    backend, plus "best" (the fastest backend and setting) and "dropout"; a backend that is
    not installed is {"skipped": why}."""
    from keras_attn.config import TrainSettings

    dropout = TrainSettings().dropout
    rounds, steps = (2, 4) if quick else (3, 10)
    payload = json.dumps({**config.to_dict(), "dropout": dropout})
    results: dict = {"dropout": dropout, "rounds": rounds, "steps": steps}
    for backend in BACKENDS:
        if importlib.util.find_spec(backend) is None:
            results[backend] = {"skipped": f"not installed (pip install 'keras-attn[{backend}]')"}
            continue
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.backend_speed", backend, payload, str(rounds),
             str(steps)], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if child.returncode != 0:
            raise RuntimeError(f"backend_speed on {backend} failed:\n{child.stderr[-3000:]}")
        results[backend] = json.loads(child.stdout.strip().splitlines()[-1])
    timed = [(speed, backend, setting) for backend in BACKENDS
             for setting, speed in results[backend].items() if setting.startswith("jit")]
    speed, backend, setting = max(timed)
    results["best"] = {"backend": backend, "setting": setting, "tokens_per_s": speed}
    return results


def markdown(results: dict) -> str:
    """A table: one row per backend, tokens/s with XLA off and on."""
    lines = [f"Training tokens/s per Keras backend (dropout {results['dropout']}, best of "
             f"{results['rounds']} rounds of {results['steps']} steps):", "",
             "| backend | jit off | jit on |", "|---|---|---|"]
    for backend in BACKENDS:
        row = results[backend]
        if "skipped" in row:
            lines.append(f"| {backend} | {row['skipped']} | |")
            continue
        cells = [f"{row[key]:,.0f}" if key in row else "not run" for key in ("jit off", "jit on")]
        lines.append(f"| {backend} | {cells[0]} | {cells[1]} |")
    best = results["best"]
    lines.append(f"\nFastest: {best['backend']}, {best['setting']} "
                 f"({best['tokens_per_s']:,.0f} tokens/s).")
    return "\n".join(lines)


def _child(backend: str, payload: str, rounds: int, steps: int) -> dict:
    import keras
    import numpy as np

    import keras_attn as ka
    from benchmarks.training_speed import BATCH, _compiled, _steps_per_second

    assert keras.backend.backend() == backend, (keras.backend.backend(), backend)
    keras.utils.set_random_seed(0)
    config = ka.ModelConfig(**json.loads(payload))
    warmup = 2
    rng = np.random.default_rng(0)
    count = (warmup + steps) * BATCH
    x = rng.integers(1, config.vocab_size, size=(count, config.max_len), dtype=np.int32)
    y = rng.integers(0, config.num_classes, size=(count,), dtype=np.int32)
    settings = (False,) if backend == "torch" else (False, True)
    models = {jit: _compiled(ka.build_classifier, config, jit) for jit in settings}
    best = dict.fromkeys(settings, 0.0)
    for _ in range(rounds):
        for jit, model in models.items():
            best[jit] = max(best[jit], _steps_per_second(model, x, y, warmup, steps))
    return {f"jit {'on' if jit else 'off'}": best[jit] * BATCH * config.max_len
            for jit in settings}


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
