"""Which onnxruntime-only files of an export ship: each is kept only once it is checked.

`model.optimized.onnx` and `model.int8.onnx` (written by `export.formats.optimize`) are
speed-ups, not the contract: a file that onnxruntime cannot load (`check_loads`) or that fails
the parity battery (`drop_failed`) is left out of the version folder, the reason recorded in
the manifest's `onnxruntime_files` and given as a `RuntimeWarning` (`warn_not_shipped`), and
the export goes on. The optimized decoder step (`export.verification.decoder_parity`) is
settled the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from export import runtime
from export.artifact.manifest import INT8_FILENAME, OPTIMIZED_FILENAME
from export.formats.optimize import left_out
from export.verification.parity import MIN_AGREEMENT, AgreementResult, PairResult, ParityReport
from export.verification.runtimes import runtime_file

# What model.int8.onnx is held to, as the manifest records it beside how it was built.
INT8_BOUND = (f"argmax agreement with Keras >= {MIN_AGREEMENT:.0%} on 'data' (not "
              "element-wise), and row independence: a row's logits alone, together, padded to "
              "max_len and among random rows within the fp32 tolerance")


def check_loads(entries: dict[str, dict[str, Any]], folder: Path, filename: str) -> None:
    """Leaves a written file out when onnxruntime cannot load it (so that the battery, which
    would stop the export at a file that does not load, never sees it)."""
    if not entries[filename]["shipped"]:
        return
    try:
        runtime.load(folder / filename)
    except Exception as error:
        entries[filename] = left_out(
            folder, filename, f"onnxruntime cannot load it: {type(error).__name__}: {error}")


def drop_failed(report: ParityReport, folder: Path,
                entries: dict[str, dict[str, Any]]) -> ParityReport:
    """Settles which onnxruntime-only files ship, once the battery has run.

    A file written by `export.formats.optimize` ships only when the battery checked it and
    every one of its results passed; the int8 file also needs the optimized file it was built
    from. Any other is removed from `folder`, with the reason in `entries`. Shipped entries
    get their measured result (max abs diff, or argmax agreement).

    Returns:
        The report without the pairs of the files removed. The portable files' pairs are
        kept whatever they say: their failure fails the export.
    """
    results: dict[str | None, list[PairResult | AgreementResult]] = {}
    for result in (*report.pairs, *report.agreements):
        results.setdefault(runtime_file(result.pair), []).append(result)
    failed: dict[str, str] = {}
    for filename in (OPTIMIZED_FILENAME, INT8_FILENAME):  # the int8 file's source first
        if not entries.get(filename, {}).get("shipped"):
            continue
        failing = [result for result in results.get(filename, ()) if not result.passed]
        if failing:
            failed[filename] = f"failed the parity battery: {_describe(failing[0])}"
        elif not results.get(filename):
            failed[filename] = "the parity battery did not check it"
        elif filename == INT8_FILENAME and OPTIMIZED_FILENAME in failed:
            failed[filename] = f"it is built from {OPTIMIZED_FILENAME}, which was not shipped"
    for filename, reason in failed.items():
        entries[filename] = left_out(folder, filename, reason)
    for filename, entry in entries.items():
        if entry["shipped"] and filename == INT8_FILENAME:
            entry["agreement"] = min(result.agreement for result in results[filename])
            entry["row_dependence"] = max(result.row_dependence for result in results[filename])
            entry["row_tolerance"] = min(result.row_tolerance for result in results[filename])
        elif entry["shipped"]:
            entry["max_abs_diff"] = max(result.max_abs_diff for result in results[filename])
    return ParityReport(
        tuple(pair for pair in report.pairs if runtime_file(pair.pair) not in failed),
        report.seed,
        tuple(result for result in report.agreements if runtime_file(result.pair) not in failed),
        report.fp32_floor)


def _describe(result: PairResult | AgreementResult) -> str:
    if isinstance(result, AgreementResult):
        failures = []
        if result.agreement < result.bound:
            failures.append(f"argmax agreement {result.agreement:.2%} < {result.bound:.0%} on "
                            f"{result.data} (worst: {result.worst_case})")
        if result.row_dependence is None:
            failures.append("row independence not checked")
        elif not result.row_independent:
            failures.append(f"a row's logits depend on its batch: max abs diff "
                            f"{result.row_dependence:.3g} > {result.row_tolerance:.3g} "
                            f"(worst: {result.row_worst_case})")
        return f"{result.pair}: {'; '.join(failures)}"
    return (f"{result.pair}: max abs diff {result.max_abs_diff:.3g} > {result.tolerance:g} "
            f"(worst: {result.worst_case})")


def warn_not_shipped(entries: Mapping[str, Mapping[str, Any]]) -> None:
    """One RuntimeWarning per file left out, with the reason the manifest records."""
    for filename, entry in entries.items():
        if not entry["shipped"]:
            warnings.warn(f"{filename} is not shipped: {entry['reason']}", RuntimeWarning,
                          stacklevel=3)
