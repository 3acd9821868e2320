"""The parity battery: the same token ids through Keras and through every exported runtime.

An exported artifact is only as good as its agreement with the Keras model it came from. The
battery is a fixed-seed set of batches (batch sizes 1, 2, 7, 32; lengths 1, 2, max_len // 2,
max_len; ragged batches right-padded with id 0), each run through a reference and through
every candidate, keeping the largest absolute and relative difference on the logits.

A quantized model (int8) cannot meet an element-wise fp32 tolerance, and is not meant to: it
is checked against a stated accuracy bound instead: the share of predictions (the argmax of
each row's logits; for a language model, of each real position's) that agree with the
reference's, at least `MIN_AGREEMENT`, on representative data when there is some (the run's
held-out token ids), else on the battery. It is also checked for row independence: the same
rows run alone, together, padded to max_len and among random batch-mates must give the same
logits, within the fp32 tolerance (`row_contexts`, `row_dependence`). Dynamic quantization,
which takes one activation scale over the whole batch, fails that check. Both results are
reported apart.

NumPy and the standard library only: the runtimes are passed in as plain functions
`token_ids [batch, sequence] int32 -> logits float32`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from export.inputs import PADDING_ID

TOLERANCE = 1e-5
# The tolerance rises to this many times the model's fp32 error floor (Keras fp32 against the
# same model in float64) when that is larger than TOLERANCE: two fp32 runtimes, each up to
# the floor away from the exact logits, can differ by twice it; 3 leaves room for the other
# runtime's own rounding. A real conversion error (e.g. tanh gelu for exact gelu, 3.4e-4)
# stays far outside.
FLOOR_FACTOR = 3.0
BATCH_SIZES = (1, 2, 7, 32)
SEED = 0
# Relative differences are taken against max(|reference|, REL_FLOOR): below the floor a logit
# is as good as zero and the absolute tolerance is the meaningful one.
REL_FLOOR = 1e-3
# The accuracy bound of a quantized candidate: at least this share of predictions unchanged.
MIN_AGREEMENT = 0.99
# The row-independence check: this many rows, each run alone and in every context, and
# random batch-mates enough to fill a batch of ROW_CHECK_BATCH.
ROW_CHECK_ROWS = 16
ROW_CHECK_BATCH = 32
# Representative ids are run through a quantized candidate in batches of this many rows.
REPRESENTATIVE_BATCH = 32

Runtime = Callable[[np.ndarray], np.ndarray]


def effective_tolerance(tolerance: float, fp32_floor: float | None) -> float:
    """`tolerance`, or `FLOOR_FACTOR` x the model's measured fp32 error floor if larger."""
    if fp32_floor is None or not np.isfinite(fp32_floor):
        return tolerance
    return max(tolerance, FLOOR_FACTOR * fp32_floor)


@dataclasses.dataclass(frozen=True)
class ParityCase:
    """One batch of the battery: `name` says how it was made, e.g. "batch=7 ragged"."""

    name: str
    token_ids: np.ndarray


def parity_cases(
    max_len: int,
    vocab_size: int,
    seed: int = SEED,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
) -> list[ParityCase]:
    """The battery for a model: full-length batches at every (batch size, length), then one
    ragged batch per batch size whose rows run from 1 id to max_len ids, padded with 0.

    Real ids are drawn from [1, vocab_size) so that only the padding is id 0.

    Example:
        >>> [case.name for case in parity_cases(4, 10, batch_sizes=(2,))]
        ['batch=2 length=1', 'batch=2 length=2', 'batch=2 length=4', 'batch=2 ragged']
    """
    rng = np.random.default_rng(seed)
    lengths = sorted({1, 2, max(1, max_len // 2), max_len} & set(range(1, max_len + 1)))
    cases = []
    for batch in batch_sizes:
        for length in lengths:
            ids = rng.integers(1, vocab_size, size=(batch, length), dtype=np.int32)
            cases.append(ParityCase(f"batch={batch} length={length}", ids))
        cases.append(ParityCase(f"batch={batch} ragged", _ragged_batch(rng, batch, max_len,
                                                                         vocab_size)))
    return cases


def _ragged_batch(rng: np.random.Generator, batch: int, max_len: int, vocab_size: int):
    """Rows of random lengths; the first is max_len long and the second 1 id long, so that
    every ragged batch of two or more rows has both a full row and a mostly-padded one."""
    row_lengths = rng.integers(1, max_len + 1, size=batch)
    row_lengths[0] = max_len
    if batch > 1:
        row_lengths[1] = 1
    ids = np.full((batch, max_len), PADDING_ID, np.int32)
    for row, length in enumerate(row_lengths):
        ids[row, :length] = rng.integers(1, vocab_size, size=length, dtype=np.int32)
    return ids


def check_representative_ids(token_ids: Any, max_len: int, vocab_size: int) -> np.ndarray:
    """Checks representative token ids (e.g. a run's held-out texts, tokenized) for a model.

    Args:
        token_ids: integers `[n, width]`, n >= 1, 1 <= width <= max_len; every row holds at
            least one real id and is right-padded with 0 (the padding id).
        max_len, vocab_size: the model's.

    Returns:
        The ids as an int32 array `[n, width]`.

    Raises:
        ValueError: naming what is wrong, what is allowed and what was received.
    """
    ids = np.asarray(token_ids)
    allowed = (f"Expected integer token ids [n, width] with n >= 1 and 1 <= width <= "
               f"max_len={max_len}, each id in [0, vocab_size={vocab_size}), every row "
               "right-padded with 0 and holding at least one real id.")
    if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"representative_ids must be integers. {allowed} Received: dtype "
                         f"{ids.dtype}")
    if ids.ndim != 2 or not ids.size or ids.shape[1] > max_len:
        raise ValueError(f"representative_ids has the wrong shape. {allowed} Received: shape "
                         f"{ids.shape}")
    outside = np.argwhere((ids < 0) | (ids >= vocab_size))
    if len(outside):
        row, column = outside[0]
        raise ValueError(f"representative_ids holds an id outside [0, vocab_size="
                         f"{vocab_size}). {allowed} Received: id {ids[row, column]} at "
                         f"[{row}, {column}] ({len(outside)} id(s) out of range)")
    real = ids != PADDING_ID
    empty = np.flatnonzero(~real.any(axis=1))
    if len(empty):
        raise ValueError(f"representative_ids has rows of padding only. {allowed} Received: "
                         f"{len(empty)} such row(s), the first at row {empty[0]}")
    # Right-padded: once a row reaches padding, it holds nothing else.
    holes = np.flatnonzero((np.diff(real.astype(np.int8), axis=1) > 0).any(axis=1))
    if len(holes):
        raise ValueError(f"representative_ids has a real id after padding. {allowed} "
                         f"Received: row {holes[0]}: {ids[holes[0]].tolist()}")
    return ids.astype(np.int32)


def representative_cases(token_ids: np.ndarray,
                         batch_size: int = REPRESENTATIVE_BATCH) -> list[ParityCase]:
    """Checked representative ids (`check_representative_ids`) as battery cases of
    `batch_size` rows, e.g. "representative rows 0-31"."""
    return [ParityCase(f"representative rows {start}-{start + len(chunk) - 1}", chunk)
            for start in range(0, len(token_ids), batch_size)
            for chunk in (token_ids[start:start + batch_size],)]


@dataclasses.dataclass(frozen=True)
class RowContexts:
    """The rows of the row-independence check, and the batches that hold them.

    Attributes:
        rows: each row's real ids (no padding), as run alone: `[1, length]`.
        batches: (name, token_ids [batch, width], the batch row holding each of `rows`).
    """

    rows: tuple[np.ndarray, ...]
    batches: tuple[tuple[str, np.ndarray, tuple[int, ...]], ...]


def row_contexts(token_ids: np.ndarray, max_len: int, vocab_size: int, seed: int = SEED,
                 rows: int = ROW_CHECK_ROWS, batch_size: int = ROW_CHECK_BATCH) -> RowContexts:
    """The first `rows` rows of `token_ids` (right-padded, as `check_representative_ids`
    returns them) in three kinds of batch: together at their width, padded with 0 to max_len,
    and among random batch-mates (ids from [1, vocab_size), lengths 1 to max_len, one full
    and one of a single id) at max_len, twice, at random places.

    Example:
        >>> ids = np.array([[5, 7, 0], [3, 0, 0]])
        >>> names = [name for name, _, _ in row_contexts(ids, 4, 10, batch_size=4).batches]
        >>> names[:2], names[2:]
        (['together, width 3', 'padded to max_len=4'], ['among 2 random rows (1)', \
'among 2 random rows (2)'])
    """
    ids = np.asarray(token_ids, np.int32)[:rows]
    lengths = (ids != PADDING_ID).sum(axis=1)
    alone = tuple(row[:length][None] for row, length in zip(ids, lengths, strict=True))
    count = len(ids)
    padded = np.pad(ids, ((0, 0), (0, max_len - ids.shape[1])))
    batches = [(f"together, width {ids.shape[1]}", ids, tuple(range(count)))]
    if ids.shape[1] < max_len:
        batches.append((f"padded to max_len={max_len}", padded, tuple(range(count))))
    rng = np.random.default_rng(seed)
    mates = max(batch_size - count, 2)
    for attempt in (1, 2):
        batch = np.empty((count + mates, max_len), np.int32)
        places = rng.permutation(count + mates)
        batch[places[:count]] = padded
        batch[places[count:]] = _ragged_batch(rng, mates, max_len, vocab_size)
        batches.append((f"among {mates} random rows ({attempt})", batch,
                        tuple(int(place) for place in places[:count])))
    return RowContexts(alone, tuple(batches))


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
