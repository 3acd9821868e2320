"""Parity at every decoding step for a language model's cached decoder steps.

A language-model export ships two cached steps: `decoder.onnx`
(`export.runtime.decoder_step.CachedStep` on onnxruntime) and the SavedModel's `decoder_step`
signature (`export.formats.savedmodel_decoder.SavedModelStep`). Both, and the Keras cache they
were traced from (`keras_attn.models.cached_decoder.CachedDecoder`), decode greedily from
`parity_prompts` to max_len; at every step each step's logits are compared with the Keras model
run on the whole sequence so far, and every step must choose the same tokens as Keras.
`check_decoder` runs this at export, on the files `export.formats.decoder_onnx` wrote (nothing
is written when it fails), `verify_decoder` in `verify`.

`decoder.optimized.onnx` (decoder.onnx rewritten by `export.formats.optimize.rewrite`:
LayerNorm and MatMul kernels where tf2onnx wrote a dozen small ops) is held to the same check;
it is an onnxruntime-only speed-up, so when it fails it is left out (with a RuntimeWarning and the
reason in the manifest) and the export goes on. No int8 decoder ships: measured, it changed
the greedy text (README, "Export: `decoder.optimized.onnx`, and why no int8 decoder").

TensorFlow and keras_attn are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from export.artifact.manifest import DECODER_FILENAME, OPTIMIZED_DECODER_FILENAME
from export.formats.optimize import left_out
from export.runtime.decoder_step import CachedStep
from export.verification.shipping import warn_not_shipped

KERAS_CACHE = "keras cache"
ONNX_DECODER = "onnx decoder"
OPTIMIZED_DECODER = "onnx decoder optimized"
SAVEDMODEL_DECODER = "savedmodel decoder"


def parity_prompts(max_len: int, vocab_size: int, seed: int = 0) -> list[list[int]]:
    """Prompts of 1, max_len // 2 and max_len - 1 random non-padding ids (fewer when max_len
    is small): decoding from each reaches max_len, so every position is checked."""
    rng = np.random.default_rng(seed)
    lengths = sorted({1, max(1, max_len // 2), max(1, max_len - 1)})
    return [rng.integers(1, vocab_size, size=length).tolist() for length in lengths]


class _Recompute:
    """Wraps a cached step: at every step its logits are compared with the full model run on
    the whole sequence so far; the largest absolute difference is kept."""

    def __init__(self, step, full_logits):
        self.step, self.full_logits = step, full_logits
        self.sequence = np.zeros((1, 0), dtype=np.int64)
        self.worst, self.steps = 0.0, 0

    def __call__(self, token_ids, position_ids, cache):
        logits, cache = self.step(token_ids, position_ids, cache)
        self.sequence = np.concatenate([self.sequence, token_ids], axis=1)
        full = self.full_logits(self.sequence)[:, -token_ids.shape[1]:]
        self.worst = max(self.worst, float(np.max(np.abs(np.asarray(logits) - full))))
        self.steps += 1
        return logits, cache


def check_decoder_parity(model, steps: Mapping[str, object], tolerance: float) -> dict:
    """Parity at every decoding step, for greedy decoding from `parity_prompts` to max_len.

    Checks, against a full recompute of the sequence so far by the Keras model: the Keras
    cached step and each of `steps`; and that greedy decoding gives the same tokens in each
    of `steps` as in Keras.

    Args:
        model: the Keras language model (float32).
        steps: name -> an exported cached step with `empty_cache()` (e.g. "onnx decoder": a
            `CachedStep`, "savedmodel decoder": a `SavedModelStep`).
        tolerance: the largest absolute logit difference that passes.

    Returns:
        A JSON-ready dict: "<name> vs recompute" (max abs diff) for "keras cache" and each of
        `steps`, "steps" (all steps run), "prompts", "greedy_tokens_equal", "tolerance", "ok".
    """
    return _report(_measure(model, steps), list(steps), tolerance)


def _measure(model, steps: Mapping[str, object]) -> dict:
    """Decodes greedily with the Keras cache and each of `steps`, each step compared with a
    full recompute: {"prompts": n, name: (max abs diff, steps run, same tokens as Keras)}."""
    import tensorflow as tf

    from export.runtime.sampling import generate_ids
    from keras_attn.models.cached_decoder import CachedDecoder

    # One graph for the recompute: eagerly, each call of the model costs ~100 ms.
    recompute = tf.function(lambda ids: model(ids, training=False),
                            input_signature=[tf.TensorSpec([None, None], tf.int64)])

    def full_logits(ids):
        return recompute(ids).numpy()

    keras_decoder = CachedDecoder(model)
    max_len, vocab_size = keras_decoder.max_len, keras_decoder.vocab_size
    candidates = {KERAS_CACHE: (keras_decoder.step, keras_decoder.empty_cache),
                  **{name: (step, step.empty_cache) for name, step in steps.items()}}
    measured = {name: (0.0, 0, True) for name in candidates}
    prompts = parity_prompts(max_len, vocab_size)
    for prompt in prompts:
        keras_tokens = None
        for name, (step, empty) in candidates.items():
            checked = _Recompute(step, full_logits)
            tokens = generate_ids(checked, empty(), prompt, max_len, None, max_len).new_ids
            keras_tokens = tokens if keras_tokens is None else keras_tokens
            worst, count, equal = measured[name]
            measured[name] = (max(worst, checked.worst), count + checked.steps,
                              equal and tokens == keras_tokens)
    return {"prompts": len(prompts), **measured}


def _report(measured: dict, names: list[str], tolerance: float) -> dict:
    """The JSON-ready report of `check_decoder_parity` for the Keras cache and `names`."""
    names = [KERAS_CACHE, *names]
    worst = {f"{name} vs recompute": measured[name][0] for name in names}
    equal = all(measured[name][2] for name in names)
    return {**worst, "steps": sum(measured[name][1] for name in names),
            "prompts": measured["prompts"], "greedy_tokens_equal": equal,
            "tolerance": tolerance,
            "ok": equal and all(value <= tolerance for value in worst.values())}


# How the summary names each step's engine.
ENGINES = {KERAS_CACHE: "Keras", ONNX_DECODER: "onnxruntime",
           OPTIMIZED_DECODER: "onnxruntime optimized", SAVEDMODEL_DECODER: "SavedModel"}


def decoder_summary(report: dict) -> str:
    """The decoder steps' parity in two lines, for export and verify output."""
    names = [key.removesuffix(" vs recompute") for key in report
             if key.endswith(" vs recompute")]
    diffs = ", ".join(f"{name} {report[f'{name} vs recompute']:.2e}" for name in names)
    engines = " == ".join(ENGINES.get(name, name) for name in names)
    return (f"decoder steps: {report['steps']} cached steps from {report['prompts']} prompts "
            f"to max_len, vs full recompute: {diffs} (tolerance {report['tolerance']:.0e}); "
            f"greedy tokens {engines}: {report['greedy_tokens_equal']}; "
            f"{'pass' if report['ok'] else 'FAIL'}")


class DecoderParityError(RuntimeError):
    """An exported decoder step disagrees with a full recompute in Keras."""


def exported_steps(folder: Path) -> dict[str, object]:
    """The cached steps a folder holds: "onnx decoder" and "onnx decoder optimized" for
    decoder.onnx and decoder.optimized.onnx when present, and "savedmodel decoder" when it
    holds a SavedModel with a `decoder_step` signature (exports made before that signature
    existed have none)."""
    from export.formats.savedmodel_decoder import SavedModelStep, has_decoder_step

    folder = Path(folder)
    steps: dict[str, object] = {}
    for name, filename in ((ONNX_DECODER, DECODER_FILENAME),
                           (OPTIMIZED_DECODER, OPTIMIZED_DECODER_FILENAME)):
        if (folder / filename).is_file():
            steps[name] = CachedStep(folder / filename)
    if has_decoder_step(folder):
        steps[SAVEDMODEL_DECODER] = SavedModelStep(folder)
    return steps


def check_decoder(model, folder: Path, tolerance: float, optimized: dict) -> dict:
    """Checks the decoder steps an export's staging folder holds at every step (decoder.onnx
    and decoder.optimized.onnx as `export.formats.decoder_onnx.write_decoder_files` wrote
    them, and the SavedModel's `decoder_step` signature when the folder has one), and settles
    whether decoder.optimized.onnx ships.

    Args:
        model: the Keras language model (float32).
        folder: the staging folder.
        tolerance: the largest absolute logit difference that passes.
        optimized: how decoder.optimized.onnx was built (`write_decoder_files`' answer).

    Returns:
        The manifest's "decoder" entry: the file, its inputs and outputs, the SavedModel
        signature's name (or None), the parity report of `check_decoder_parity`, and
        "optimized": `optimized` with its own parity report, or `{"shipped": False,
        "reason": ...}` (then the file is removed, with a RuntimeWarning).

    Raises:
        DecoderParityError: decoder.onnx or the SavedModel step failed the parity check (the
            export is not written).
    """
    from export.formats.savedmodel_decoder import DECODER_SIGNATURE_NAME

    folder = Path(folder)
    steps = exported_steps(folder)
    measured = _measure(model, steps)  # one decoding pass for all; each judged on its own
    portable = [name for name in steps if name != OPTIMIZED_DECODER]
    report = _report(measured, portable, tolerance)
    if not report["ok"]:
        raise DecoderParityError(f"A decoder step disagrees with Keras; nothing was written. "
                                 f"{decoder_summary(report)}")
    if OPTIMIZED_DECODER in steps:
        optimized_report = _report(measured, [OPTIMIZED_DECODER], tolerance)
        if optimized_report["ok"]:
            optimized["parity"] = optimized_report
        else:
            optimized = left_out(folder, OPTIMIZED_DECODER_FILENAME, "failed the parity check: "
                                 + decoder_summary(optimized_report))
    warn_not_shipped({OPTIMIZED_DECODER_FILENAME: optimized})
    session = steps[ONNX_DECODER].session
    return {"file": DECODER_FILENAME,
            "inputs": {value.name: value.shape for value in session.get_inputs()},
            "outputs": {value.name: value.shape for value in session.get_outputs()},
            "savedmodel_signature": DECODER_SIGNATURE_NAME
            if SAVEDMODEL_DECODER in steps else None,
            "parity": report, "optimized": optimized}


def verify_decoder(model, version_dir: Path, tolerance: float) -> dict | None:
    """`check_decoder_parity` on an export's cached steps (`exported_steps`); None when the
    export has none (a classifier)."""
    steps = exported_steps(version_dir)
    return check_decoder_parity(model, steps, tolerance) if steps else None
