"""Text generation from an exported language model on onnxruntime: NumPy + onnxruntime only.

Two ways to run a step of `export.runtime.sampling`'s loop:

- `CachedStep`: the exported decoder step (`decoder.onnx`, see `export.runtime.decoder_step`),
  which takes the new tokens and every block's past keys and values and returns the logits and the
  present keys and values: each new token costs O(n).
- `RecomputeStep`: the full-sequence `model.onnx`, run on the whole sequence so far at every
  step (O(n^2) per token): for exports without a decoder step, and as the reference the
  benchmark compares the cache with.

Never imports TensorFlow or Keras.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from export import runtime
from export.artifact.manifest import (
    DECODER_FILENAME,
    OPTIMIZED_DECODER_FILENAME,
    TOKENIZER_FILENAME,
)
from export.artifact.token_ids import as_id_array
from export.artifact.tokenizer import load_tokenizer
from export.runtime.decoder_step import CachedStep
from export.runtime.sampling import GeneratedText, generate_text


class RecomputeStep:
    """A step over the full-sequence ONNX model: the "cache" is the ids read so far.

    Args:
        predictor: an `export.runtime.predictor.Predictor` of a language model.
    """

    def __init__(self, predictor: runtime.Predictor) -> None:
        self.predictor = predictor
        self.max_len, self.vocab_size = predictor.max_len, predictor.vocab_size

    def empty_cache(self) -> np.ndarray:
        """No ids yet: int64 `[1, 0]`."""
        return np.zeros((1, 0), dtype=np.int64)

    def __call__(self, token_ids, position_ids, cache):
        """(logits float32 `[1, new, vocab]`, ids so far `[1, past + new]`).

        Raises:
            ValueError: ids the predictor refuses (`check_token_ids`); they are joined to the
                cache uncast, so a float or boolean id is refused, never truncated to an int.
        """
        cache = np.concatenate([cache, as_id_array(token_ids)], axis=1)
        logits = self.predictor.predict(cache)
        return logits[:, -np.shape(token_ids)[1]:], cache


def load_step(version_dir: str | os.PathLike, cached: bool = True, threads: int = 1):
    """The step of a version folder: `CachedStep` over its decoder step when it has one and
    `cached` (decoder.optimized.onnx when shipped, else decoder.onnx), else `RecomputeStep`
    over its model.onnx.

    Raises:
        ValueError: the export is not a language model.
        FileNotFoundError: no ONNX file in the folder.
    """
    version_dir = Path(version_dir)
    if cached:
        for filename in (OPTIMIZED_DECODER_FILENAME, DECODER_FILENAME):
            if (version_dir / filename).is_file():
                return CachedStep(version_dir / filename, threads=threads)
    predictor = runtime.load(version_dir, threads=threads)
    if predictor.task != "language_model":
        raise ValueError(f"Generation needs a language model, and {version_dir} holds a "
                         f"{predictor.task}. Expected an export of a train-lm run. "
                         f"Received: {version_dir}")
    return RecomputeStep(predictor)


def generate_from_export(version_dir: str | os.PathLike, prompt: str, max_new_tokens: int,
                         temperature: float = 0.0, top_k: int | None = None,
                         top_p: float | None = None, seed: int | None = None,
                         cached: bool = True, *, repetition_penalty: float = 1.0,
                         no_repeat_ngram_size: int = 0) -> GeneratedText:
    """`keras_attn.generate` on an export version folder, on onnxruntime.

    Args:
        version_dir: an export version folder of a language model (with tokenizer.json).
        prompt, max_new_tokens, temperature, top_k, top_p, seed, repetition_penalty,
            no_repeat_ngram_size: as in `export.runtime.sampling.generate_text`.
        cached: use the decoder step with its key/value cache when the export has one.

    Returns:
        A `GeneratedText`.

    Raises:
        ValueError: bad arguments, a classifier export, or a folder without its tokenizer.
    """
    version_dir = Path(version_dir)
    if not (version_dir / TOKENIZER_FILENAME).is_file():
        raise ValueError(f"{version_dir} has no {TOKENIZER_FILENAME} to turn the prompt into "
                         f"ids. Expected an export folder made by keras-attn. Received: "
                         f"{version_dir}")
    step = load_step(version_dir, cached=cached)
    return generate_text(step, step.empty_cache(), load_tokenizer(version_dir /
                                                                   TOKENIZER_FILENAME),
                         prompt, step.max_len, step.vocab_size, max_new_tokens, temperature,
                         top_k, top_p, seed, repetition_penalty=repetition_penalty,
                         no_repeat_ngram_size=no_repeat_ngram_size)
