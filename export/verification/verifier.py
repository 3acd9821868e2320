"""`verify(version_dir)`: is this exported folder intact, and does it still compute what Keras
computes?

Three checks, in order: every file matches `manifest.json` (sha256 and size, none missing, none
added); the exported `model.keras`, the SavedModel and the ONNX files all load; and the parity
battery gives the same logits from Keras, the SavedModel's `serving_default`, and onnxruntime
on `model.onnx` and on `model.optimized.onnx` (when shipped) at the basic and the full
optimization level. `model.int8.onnx` (when shipped) is held to its accuracy bound instead
(argmax agreement), reported apart. For a language model, the cached decoding steps
(decoder.onnx, decoder.optimized.onnx when shipped, and the SavedModel's `decoder_step`) are
checked against a full recompute at every step (`export.verification.decoder_parity`). TensorFlow
and
keras_attn are imported inside the functions that need them, so `import export` stays light.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from export.artifact.manifest import KERAS_FILENAME, check_manifest, read_manifest
from export.artifact.representative_ids import load_representative_ids
from export.verification.attention_parity import attention_summary, verify_attention
from export.verification.cases import SEED, parity_cases, representative_cases, row_contexts
from export.verification.decoder_parity import decoder_summary, verify_decoder
from export.verification.parity import (
    TOLERANCE,
    ParityReport,
    Runtime,
    compare_runtimes,
    effective_tolerance,
)
from export.verification.runtimes import LoadError, load_quantized, load_runtimes


def check_parity(model: Any, runtimes: Mapping[str, Runtime], max_len: int, vocab_size: int,
                 tolerance: float = TOLERANCE, seed: int = SEED,
                 quantized: Mapping[str, Runtime] | None = None,
                 representative_ids: np.ndarray | None = None) -> ParityReport:
    """Runs the parity battery: the Keras `model` against each of `runtimes`, and each of
    `quantized` against the accuracy bound and for row independence.

    The element-wise tolerance is `tolerance`, or `FLOOR_FACTOR` times the model's own fp32
    error floor where that is larger (see `fp32_error_floor`): two fp32 runtimes cannot agree
    more closely than fp32 lets either of them compute the model. The row-independence check
    uses the same tolerance: a quantized row's logits may move with its batch no more than
    fp32 lets two runtimes differ.

    `representative_ids` (checked int32 `[n, width]`,
    `export.verification.cases.check_representative_ids`) are what the quantized candidates are
    checked on, agreement and rows; without them, the battery's random ids (its largest ragged
    batch gives the rows).
    """
    from export.formats.tf_function import keras_runtime

    cases = parity_cases(max_len, vocab_size, seed)
    floor = fp32_error_floor(model, cases)
    if representative_ids is None:
        quantized_cases, data = None, "parity battery"
        rows = next(case.token_ids for case in reversed(cases)  # the largest ragged batch
                    if case.name.endswith("ragged"))
    else:
        quantized_cases = representative_cases(representative_ids)
        data, rows = f"{len(representative_ids)} representative rows", representative_ids
    return compare_runtimes(keras_runtime(model), runtimes, cases,
                            effective_tolerance(tolerance, floor), seed=seed,
                            quantized=quantized, fp32_floor=floor,
                            quantized_cases=quantized_cases, quantized_data=data,
                            contexts=row_contexts(rows, max_len, vocab_size, seed))


def fp32_error_floor(model: Any, cases: list) -> float:
    """How far the Keras model in fp32 is from the same model computed in float64, over the
    battery: the rounding error fp32 itself makes on this model's logits.

    A well-trained model with saturated attention and sharp LayerNorms amplifies rounding:
    measured 1.5e-5 on a trained 2-block classifier (with onnxruntime 1.4e-5 from float64
    too), where untrained test models sit near 1e-7.
    """
    import keras_attn as ka
    from export.formats.tf_function import keras_runtime

    twin = ka.rebuild(model, "float64")
    fp32, fp64 = keras_runtime(model), keras_runtime(twin)
    return max(float(np.max(np.abs(np.asarray(fp32(case.token_ids), "float64")
                                   - np.asarray(fp64(case.token_ids)))))
               for case in cases)


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """What `verify` found. `ok` only when no file problem and every parity pair passes.

    Attributes:
        version_dir: the folder checked.
        problems: one line per problem, each naming the file (missing, changed, unlisted,
            unloadable, or a config that disagrees with the manifest).
        parity: the battery's report, or None when file problems stopped it from running.
        files_checked: how many files matched their manifest entry (0 when any did not).
        decoder: a language model's decoder-step check (`export.verification.decoder_parity`).
        attention: attention.onnx's check (`export.verification.attention_parity`), or None
            when the export has no attention.onnx.
    """

    version_dir: Path
    problems: tuple[str, ...]
    parity: ParityReport | None
    files_checked: int = 0
    decoder: dict | None = None
    attention: dict | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.parity is not None and self.parity.ok

    def table(self) -> str:
        """The parity table, preceded by any file problems, and a one-line verdict."""
        lines = [f"verify {self.version_dir}"]
        if self.files_checked:
            lines.append(f"files: {self.files_checked} match manifest.json (sha256 and size)")
        lines += [f"  problem: {problem}" for problem in self.problems]
        if self.parity is not None:
            cases = self.parity.pairs[0].cases if self.parity.pairs else 0
            lines += [f"parity: {cases} batches (seed {self.parity.seed}), Keras (model.keras) "
                      "vs each runtime, fp32 logits", "", self.parity.table(), ""]
        if self.decoder is not None:
            lines += [decoder_summary(self.decoder), ""]
        if self.attention is not None:
            lines += [attention_summary(self.attention), ""]
        if self.parity is None and self.problems:
            lines.append("  parity battery not run: the files above failed their checks")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def verify(version_dir: str | os.PathLike, tolerance: float = TOLERANCE,
           seed: int = SEED) -> VerifyReport:
    """Checks an exported version folder: integrity, loadability, parity.

    Args:
        version_dir: e.g. "saved_models/sentiment/1".
        tolerance: the largest absolute logit difference that passes.
        seed: the seed the battery's batches are drawn with.

    Returns:
        A `VerifyReport`; `report.ok` is the verdict, `report.table()` the text for people.
    """
    version_dir = Path(version_dir)
    if not version_dir.is_dir():
        return VerifyReport(version_dir, (f"{version_dir}: no such folder",), None)
    problems = check_manifest(version_dir)
    if problems:
        return VerifyReport(version_dir, tuple(problems), None)
    files = len(read_manifest(version_dir)["files"])

    import keras_attn as ka

    try:
        try:
            model = ka.load_model(version_dir / KERAS_FILENAME)
        except Exception as error:
            raise LoadError(KERAS_FILENAME, error) from error
        runtimes, quantized = load_runtimes(version_dir), load_quantized(version_dir)
    except LoadError as error:
        return VerifyReport(version_dir, (str(error),), None, files)
    config = ka.config_from_model(model)
    expected = read_manifest(version_dir).get("config")
    if config.to_dict() != _with_defaults(expected):
        return VerifyReport(version_dir, (
            f"{KERAS_FILENAME}: its config {config.to_dict()} differs from the manifest's "
            f"{expected}",), None, files)
    parity = check_parity(model, runtimes, config.max_len, config.vocab_size, tolerance, seed,
                          quantized, load_representative_ids(version_dir))
    # Language models: decoder.onnx and the SavedModel's decoder_step, at every step.
    decoder = verify_decoder(model, version_dir, tolerance)
    problems = () if decoder is None or decoder["ok"] else (decoder_summary(decoder),)
    # attention.onnx, when the export has one: every block's weights against Keras's.
    attention = verify_attention(model, version_dir, tolerance)
    if attention is not None and not attention["ok"]:
        problems += (attention_summary(attention),)
    return VerifyReport(version_dir, problems, parity, files, decoder, attention)


def _with_defaults(config: object) -> object:
    """A manifest's config with the fields it predates at their defaults (an export made
    before `pooling` existed pooled the mean), or as it is where it is no ModelConfig."""
    if not isinstance(config, dict):
        return config
    from keras_attn.config import ModelConfig  # light: no Keras

    try:
        return ModelConfig.from_dict(config).to_dict()
    except (TypeError, ValueError):
        return config
