"""The parity battery's comparison: the same token ids through Keras and through every
exported runtime, and the report of how far each runtime strays.

An exported artifact is only as good as its agreement with the Keras model it came from. Each
batch of the battery (`export.verification.cases`) runs through a reference and through every
candidate, keeping the largest absolute and relative difference on the logits.

A quantized model (int8) cannot meet an element-wise fp32 tolerance, and is not meant to: it
is checked against a stated accuracy bound instead: the share of predictions (the argmax of
each row's logits; for a language model, of each real position's) that agree with the
reference's, at least `MIN_AGREEMENT`, on representative data when there is some (the run's
held-out token ids), else on the battery. It is also checked for row independence: the same
rows run alone, together, padded to max_len and among random batch-mates must give the same
logits, within the fp32 tolerance (`export.verification.cases.row_contexts`, `row_dependence`).
Dynamic quantization, which takes one activation scale over the whole batch, fails that check.
Both results are reported apart.

NumPy and the standard library only: the runtimes are passed in as plain functions
`token_ids [batch, sequence] int32 -> logits float32`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from export.artifact.token_ids import PADDING_ID
from export.verification.cases import SEED, ParityCase, RowContexts

TOLERANCE = 1e-5
# The tolerance rises to this many times the model's fp32 error floor (Keras fp32 against the
# same model in float64) when that is larger than TOLERANCE: two fp32 runtimes, each up to
# the floor away from the exact logits, can differ by twice it; 3 leaves room for the other
# runtime's own rounding. A real conversion error (e.g. tanh gelu for exact gelu, 3.4e-4)
# stays far outside.
FLOOR_FACTOR = 3.0
# Relative differences are taken against max(|reference|, REL_FLOOR): below the floor a logit
# is as good as zero and the absolute tolerance is the meaningful one.
REL_FLOOR = 1e-3
# The accuracy bound of a quantized candidate: at least this share of predictions unchanged.
MIN_AGREEMENT = 0.99

Runtime = Callable[[np.ndarray], np.ndarray]


def effective_tolerance(tolerance: float, fp32_floor: float | None) -> float:
    """`tolerance`, or `FLOOR_FACTOR` x the model's measured fp32 error floor if larger."""
    if fp32_floor is None or not np.isfinite(fp32_floor):
        return tolerance
    return max(tolerance, FLOOR_FACTOR * fp32_floor)


def row_dependence(candidate: Runtime, contexts: RowContexts) -> tuple[float, str]:
    """How much a row's logits move with the batch around it.

    Each row of `contexts` runs alone, then inside each of its batches; the logits of the row
    (a classifier's `[classes]`; a language model's real positions `[length, vocab]`) are
    compared with its logits alone.

    Returns:
        (the largest |difference| over every row and batch, "row i <batch name>" where it
        was), (0.0, "none") when every row's logits are identical. Non-finite logits count
        as an infinite difference.
    """
    worst, where = 0.0, "none"
    alone = [np.asarray(candidate(row)) for row in contexts.rows]
    for name, token_ids, places in contexts.batches:
        logits = np.asarray(candidate(token_ids))
        for index, (place, own) in enumerate(zip(places, alone, strict=True)):
            inside = logits[place:place + 1]
            if inside.ndim == 3:  # a language model: only the row's real positions
                inside = inside[:, :own.shape[1]]
            difference = diff_stats(own, inside)[0]
            if difference > worst:
                worst, where = difference, f"row {index} {name}"
    return worst, where


def diff_stats(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(max |a - b|, max |a - b| / max(|a|, REL_FLOOR)) between two logits arrays.

    A shape mismatch, or a NaN or infinity anywhere in either array, counts as an infinite
    difference: logits that are not finite agree with nothing, not even with the same NaN from
    another runtime, so a model that outputs NaN can never pass the battery.
    """
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    if reference.shape != candidate.shape:
        return float("inf"), float("inf")
    if not (np.isfinite(reference).all() and np.isfinite(candidate).all()):
        return float("inf"), float("inf")
    if reference.size == 0:
        return 0.0, 0.0
    diff = np.abs(reference - candidate)
    relative = diff / np.maximum(np.abs(reference), REL_FLOOR)
    return float(diff.max()), float(relative.max())


@dataclasses.dataclass(frozen=True)
class PairResult:
    """How far one candidate runtime strays from the reference over the whole battery."""

    pair: str
    max_abs_diff: float
    max_rel_diff: float
    tolerance: float
    worst_case: str
    cases: int

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance


@dataclasses.dataclass(frozen=True)
class AgreementResult:
    """How often a quantized candidate predicts what the reference predicts, and whether its
    rows' answers stay put whatever batch they are in.

    `agreement` is the share of `predictions` (rows of a classifier, real positions of a
    language model) whose argmax logit is the reference's, over `data` (representative ids,
    or the battery); `max_abs_diff` is reported for information only: the bound is on
    `agreement`. `row_dependence` is the largest change of a row's logits between batch
    contexts (`row_dependence`), bounded by `row_tolerance`, where it was `row_worst_case`;
    None when the check did not run, which fails.
    """

    pair: str
    agreement: float
    bound: float
    predictions: int
    max_abs_diff: float
    worst_case: str
    data: str = "parity battery"
    row_dependence: float | None = None
    row_tolerance: float | None = None
    row_worst_case: str = "none"

    @property
    def row_independent(self) -> bool:
        return (self.row_dependence is not None and self.row_tolerance is not None
                and self.row_dependence <= self.row_tolerance)

    @property
    def passed(self) -> bool:
        return self.agreement >= self.bound and self.row_independent


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """Every pair's result, and apart from them every quantized candidate's agreement; `ok`
    when all pass. `table()` formats it for people."""

    pairs: tuple[PairResult, ...]
    seed: int = SEED
    agreements: tuple[AgreementResult, ...] = ()
    fp32_floor: float | None = None

    @property
    def ok(self) -> bool:
        return bool(self.pairs) and all(result.passed for result in (*self.pairs,
                                                                      *self.agreements))

    def table(self) -> str:
        """One row per pair: pair, max abs diff, max rel diff, tolerance, pass/fail; then, if
        any, one row per quantized candidate: its argmax agreement against its bound."""
        text = ""
        if self.fp32_floor is not None:
            text = (f"fp32 error floor of this model (Keras fp32 vs float64): "
                    f"{self.fp32_floor:.3g}; tolerance = max({TOLERANCE:g}, "
                    f"{FLOOR_FACTOR:g} x floor)\n")
        text += _aligned([("pair", "max abs diff", "max rel diff", "tolerance", "result")] + [
            (pair.pair, f"{pair.max_abs_diff:.3g}", f"{pair.max_rel_diff:.3g}",
             f"{pair.tolerance:.3g}", "pass" if pair.passed else f"FAIL (worst: {pair.worst_case})")
            for pair in self.pairs
        ])
        if self.agreements:
            text += ("\n\nint8: checked against its accuracy bound (argmax agreement), not "
                     "element-wise, and for row independence (a row's logits alone, together, "
                     "padded to max_len and among random rows)\n") + _aligned(
                [("pair", "argmax agreement", "on", "bound", "max abs diff (not bounded)",
                  "row dependence", "tolerance", "result")] + [
                    (result.pair, f"{result.agreement:.2%} of {result.predictions}",
                     result.data, f">= {result.bound:.0%}", f"{result.max_abs_diff:.3g}",
                     "not run" if result.row_dependence is None
                     else f"{result.row_dependence:.3g}",
                     "-" if result.row_tolerance is None else f"{result.row_tolerance:.3g}",
                     _agreement_verdict(result))
                    for result in self.agreements])
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "seed": self.seed, "fp32_floor": self.fp32_floor,
                "pairs": [dataclasses.asdict(pair) for pair in self.pairs],
                "agreements": [dataclasses.asdict(result) for result in self.agreements]}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ParityReport:
        pairs = tuple(
            PairResult(**{k: v for k, v in pair.items() if k != "passed"})
            for pair in values["pairs"]
        )
        agreements = tuple(AgreementResult(**result) for result in values.get("agreements", ()))
        return cls(pairs=pairs, seed=values["seed"], agreements=agreements,
                   fp32_floor=values.get("fp32_floor"))


def _agreement_verdict(result: AgreementResult) -> str:
    failures = []
    if result.agreement < result.bound:
        failures.append(f"agreement, worst: {result.worst_case}")
    if not result.row_independent:
        failures.append(f"row dependence, worst: {result.row_worst_case}")
    return f"FAIL ({'; '.join(failures)})" if failures else "pass"


def _aligned(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def agreement_stats(reference: np.ndarray, candidate: np.ndarray,
                    token_ids: np.ndarray) -> tuple[int, int]:
    """(predictions that agree, predictions): argmax over the last axis of each row of a
    classifier's `[batch, classes]` logits, or of each real (non-padding) position of a
    language model's `[batch, sequence, vocab]`. Non-finite logits agree with nothing."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    counted = np.ones(reference.shape[:-1], bool)
    if reference.ndim == 3:
        counted = np.asarray(token_ids) != PADDING_ID
    if reference.shape != candidate.shape:
        return 0, int(counted.sum())
    same = reference.argmax(-1) == candidate.argmax(-1)
    same &= np.isfinite(reference).all(-1) & np.isfinite(candidate).all(-1)
    return int((same & counted).sum()), int(counted.sum())


def compare_runtimes(
    reference: Runtime,
    candidates: Mapping[str, Runtime],
    cases: list[ParityCase],
    tolerance: float = TOLERANCE,
    reference_name: str = "keras",
    seed: int = SEED,
    quantized: Mapping[str, Runtime] | None = None,
    min_agreement: float = MIN_AGREEMENT,
    fp32_floor: float | None = None,
    quantized_cases: list[ParityCase] | None = None,
    quantized_data: str = "parity battery",
    contexts: RowContexts | None = None,
) -> ParityReport:
    """Runs every case through the reference and each candidate and keeps the worst diffs.

    Args:
        reference: the function the candidates must agree with (the Keras model).
        candidates: name -> function, e.g. {"savedmodel": ..., "onnxruntime (basic)": ...}.
        cases: the battery, usually `parity_cases(max_len, vocab_size)`.
        tolerance: the largest absolute logit difference that passes.
        reference_name: how the reference is named in each pair.
        seed: recorded in the report; the seed the cases were drawn with.
        quantized: name -> function for candidates held to `min_agreement` instead of
            `tolerance` (int8 models).
        min_agreement: the least share of argmax predictions a quantized candidate must keep.
        fp32_floor: the model's measured fp32 error floor, recorded in the report (the
            caller has already folded it into `tolerance`).
        quantized_cases: the batches the quantized candidates' agreement is measured on
            (default: `cases`), e.g. `representative_cases(ids)`; `quantized_data` says
            what they are, for the report.
        contexts: the rows and batches of the quantized candidates' row-independence check
            (`row_contexts`), held to `tolerance`; without them the check fails.

    Returns:
        A `ParityReport` with one `PairResult` per candidate and one `AgreementResult` per
        quantized candidate, each named "<reference_name> vs <candidate>".
    """
    expected = [np.asarray(reference(case.token_ids)) for case in cases]
    agreements = ()
    if quantized:
        checked = cases if quantized_cases is None else quantized_cases
        checked_expected = expected if quantized_cases is None else [
            np.asarray(reference(case.token_ids)) for case in checked]
        agreements = tuple(
            _agreement(f"{reference_name} vs {name}", run, checked, checked_expected,
                       min_agreement, quantized_data, contexts, tolerance)
            for name, run in quantized.items())
    pairs = []
    for name, candidate in candidates.items():
        worst_abs, worst_rel, worst_case = 0.0, 0.0, "none"
        for case, reference_logits in zip(cases, expected, strict=True):
            max_abs, max_rel = diff_stats(reference_logits, candidate(case.token_ids))
            if max_abs > worst_abs or worst_case == "none":
                worst_abs, worst_case = max_abs, case.name
            worst_rel = max(worst_rel, max_rel)
        pairs.append(PairResult(f"{reference_name} vs {name}", worst_abs, worst_rel,
                                tolerance, worst_case, len(cases)))
    return ParityReport(tuple(pairs), seed, agreements, fp32_floor)


def _agreement(pair: str, candidate: Runtime, cases: list[ParityCase],
               expected: list[np.ndarray], bound: float, data: str,
               contexts: RowContexts | None, tolerance: float) -> AgreementResult:
    agree = total = 0
    max_abs, worst_case, worst_share = 0.0, "none", 2.0
    for case, reference_logits in zip(cases, expected, strict=True):
        logits = candidate(case.token_ids)
        same, counted = agreement_stats(reference_logits, logits, case.token_ids)
        agree, total = agree + same, total + counted
        if counted and same / counted < worst_share:
            worst_share, worst_case = same / counted, case.name
        max_abs = max(max_abs, diff_stats(reference_logits, logits)[0])
    row_diff, row_worst = (None, "none") if contexts is None else row_dependence(candidate,
                                                                                 contexts)
    return AgreementResult(pair, agree / total if total else 0.0, bound, total, max_abs,
                           worst_case, data, row_diff,
                           None if contexts is None else tolerance, row_worst)
