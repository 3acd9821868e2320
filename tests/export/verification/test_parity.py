"""export/verification/parity.py and export/verification/cases.py: the battery itself, and parity
of every
exported configuration:
Keras == SavedModel == onnxruntime (model.onnx at the basic and all levels, and
model.optimized.onnx), on the battery for all twelve configurations and on hypothesis-drawn
shapes for the four one-layer ones; the int8 agreement measure, on representative ids when
given, and the row-independence check."""

import itertools
import json
import math

import numpy as np
import pytest
from export_cases import CASES, DRAWN_CASES, exported, tiny_config
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_attn as ka
from export import runtime
from export.formats.savedmodel import savedmodel_runtime
from export.formats.tf_function import keras_runtime
from export.verification.cases import (
    BATCH_SIZES,
    check_representative_ids,
    parity_cases,
    representative_cases,
    row_contexts,
)
from export.verification.parity import (
    TOLERANCE,
    AgreementResult,
    ParityReport,
    agreement_stats,
    compare_runtimes,
    diff_stats,
    row_dependence,
)

MAX_LEN, VOCAB_SIZE = 16, 50


def test_battery_covers_every_batch_size_and_length():
    cases = parity_cases(MAX_LEN, VOCAB_SIZE)
    shapes = {case.token_ids.shape for case in cases if "ragged" not in case.name}
    assert shapes == {(b, n) for b in BATCH_SIZES for n in (1, 2, MAX_LEN // 2, MAX_LEN)}
    ragged = [case.token_ids for case in cases if "ragged" in case.name]
    assert [ids.shape[0] for ids in ragged] == list(BATCH_SIZES)
    for ids in ragged[1:]:  # every ragged batch of 2+ rows has a full row and a 1-id row
        lengths = (ids != 0).sum(axis=1)
        assert lengths.max() == MAX_LEN and lengths.min() == 1
        assert all((row[:length] != 0).all() and not row[length:].any()
                   for row, length in zip(ids, lengths, strict=True))


def test_battery_is_seeded_and_ids_are_real_tokens():
    first, again = parity_cases(MAX_LEN, VOCAB_SIZE), parity_cases(MAX_LEN, VOCAB_SIZE)
    other = parity_cases(MAX_LEN, VOCAB_SIZE, seed=1)

    def same(cases_a, cases_b):
        return all(np.array_equal(a.token_ids, b.token_ids)
                   for a, b in zip(cases_a, cases_b, strict=True))

    assert same(first, again) and not same(first, other)
    for case in first:
        assert case.token_ids.dtype == np.int32
        assert case.token_ids.max() < VOCAB_SIZE
        assert ("ragged" in case.name) or case.token_ids.min() >= 1


def test_battery_for_tiny_max_len_has_no_duplicate_lengths():
    names = [case.name for case in parity_cases(1, VOCAB_SIZE, batch_sizes=(2,))]
    assert names == ["batch=2 length=1", "batch=2 ragged"]


def test_diff_stats():
    a = np.array([[1.0, -2.0, 0.0]], np.float32)
    assert diff_stats(a, a) == (0.0, 0.0)
    max_abs, max_rel = diff_stats(a, a + np.array([[0.0, 1e-3, 0.0]]))
    assert max_abs == pytest.approx(1e-3) and max_rel == pytest.approx(5e-4)
    assert diff_stats(a, a[:, :2]) == (math.inf, math.inf)
    nan = np.array([np.nan, 1.0])
    assert diff_stats(nan, nan) == (math.inf, math.inf)  # NaN agrees with nothing, even NaN
    assert diff_stats(nan, np.array([1.0, 1.0]))[0] == math.inf
    assert diff_stats(np.array([1.0, 1.0]), nan)[0] == math.inf
    infinite = np.array([np.inf, 1.0])
    assert diff_stats(infinite, infinite) == (math.inf, math.inf)
    assert diff_stats(-infinite, np.array([1.0, 1.0]))[0] == math.inf


def test_a_runtime_that_outputs_nan_fails_even_against_itself():
    """A model whose logits are NaN everywhere gives NaN in every runtime; that must fail."""
    cases = parity_cases(4, 10, batch_sizes=(1, 2))

    def nan_everywhere(ids):
        return np.full(ids.shape, np.nan, np.float32)

    def nan_in_one_logit(ids):
        logits = ids.astype(np.float32)
        logits[0, 0] = np.nan
        return logits

    report = compare_runtimes(nan_everywhere, {"same": nan_everywhere}, cases)
    assert not report.ok and report.pairs[0].max_abs_diff == math.inf
    assert report.pairs[0].worst_case == cases[0].name
    assert "FAIL" in report.table()
    assert not compare_runtimes(nan_in_one_logit, {"same": nan_in_one_logit}, cases).ok


def test_compare_runtimes_catches_a_candidate_just_over_tolerance():
    cases = parity_cases(4, 10, batch_sizes=(1, 3))

    def reference(ids):
        return ids.astype(np.float32) / 7

    report = compare_runtimes(reference, {
        "same": reference,
        "off": lambda ids: reference(ids) + np.where(ids == ids.max(), 2 * TOLERANCE, 0),
    }, cases)
    same, off = report.pairs
    assert same.pair == "keras vs same" and same.passed and same.max_abs_diff == 0
    assert not off.passed and off.max_abs_diff == pytest.approx(2 * TOLERANCE, rel=1e-3)
    assert off.cases == len(cases)
    assert not report.ok
    table = report.table().splitlines()
    assert table[0].split() == ["pair", "max", "abs", "diff", "max", "rel", "diff",
                                "tolerance", "result"]
    assert table[1].endswith("pass") and "FAIL (worst: batch=" in table[2]


def test_report_round_trips_through_json():
    report = compare_runtimes(lambda ids: ids * 1.0, {"x": lambda ids: ids * 1.0},
                              parity_cases(2, 5, batch_sizes=(1,)))
    again = ParityReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report and again.ok


def test_agreement_counts_classifier_rows_and_language_model_real_positions():
    ids = np.array([[3, 4, 0], [5, 0, 0]], np.int32)
    reference = np.array([[0.0, 1.0], [2.0, 0.0]])
    assert agreement_stats(reference, reference + [[0, 0], [0, 3]], ids) == (1, 2)
    logits = np.zeros((2, 3, 4))
    logits[..., 1] = 1.0  # every position predicts id 1
    moved = logits.copy()
    moved[0, 2] = moved[1, 1] = [0, 0, 5, 0]  # changed only at padded positions
    assert agreement_stats(logits, moved, ids) == (3, 3)
    moved[0, 1] = [0, 0, 5, 0]  # and at one real position
    assert agreement_stats(logits, moved, ids) == (2, 3)
    assert agreement_stats(reference, reference[:, :1], ids) == (0, 2)  # shape mismatch
    nan = reference.copy()
    nan[0, 0] = np.nan
    assert agreement_stats(nan, nan, ids) == (1, 2)  # NaN agrees with nothing


def test_quantized_candidates_are_held_to_the_agreement_bound_apart_from_the_pairs():
    cases = parity_cases(4, 10, batch_sizes=(1, 3))

    def reference(ids):
        return np.eye(3, dtype=np.float32)[ids[:, 0] % 3] * 2.0

    def flips_batch_of_3(ids):
        logits = reference(ids) + 0.1  # far from element-wise equal, same argmax...
        if len(ids) == 3:
            logits[0] = np.roll(logits[0], 1)  # ...but one row in 3 predicts another class
        return logits

    contexts = row_contexts(cases[-1].token_ids, 4, 10)
    report = compare_runtimes(reference, {"same": reference}, cases,
                              quantized={"int8": reference, "bad": flips_batch_of_3},
                              contexts=contexts)
    assert [pair.pair for pair in report.pairs] == ["keras vs same"]
    good, bad = report.agreements
    assert (good.pair, good.agreement, good.predictions, good.passed) == (
        "keras vs int8", 1.0, 4 * 1 + 4 * 3, True)
    assert (good.row_dependence, good.row_tolerance, good.data) == (0.0, TOLERANCE,
                                                                    "parity battery")
    assert bad.agreement == pytest.approx(12 / 16) and not bad.passed
    assert bad.max_abs_diff >= 0.1 and bad.worst_case == "batch=3 length=1"
    # A row's answer that depends on the batch size is row dependence too: caught apart.
    assert bad.row_dependence == pytest.approx(2.0) and not bad.row_independent
    assert bad.row_worst_case == "row 0 together, width 4"  # the 3 rows of the ragged case
    assert not report.ok
    table = report.table()
    assert "int8: checked against its accuracy bound (argmax agreement), not element-wise" in table
    assert "keras vs bad   75.00% of 16" in table
    assert ("FAIL (agreement, worst: batch=3 length=1; row dependence, worst: row 0 together, "
            "width 4)") in table
    again = ParityReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report and isinstance(again.agreements[0], AgreementResult)


def dynamic_like(ids):
    """Logits of a toy model quantized the way quantize_dynamic does: one scale for the whole
    batch, from its largest value, so each row depends on the others and on the padding."""
    embedded = np.sin(ids[..., None] * np.arange(1, 4)).astype(np.float32)  # [b, n, 3]
    embedded[ids == 0] = 0.0
    scale = np.abs(embedded).max() / 127 if embedded.size else 1.0
    quantized = np.round(embedded / scale) * scale
    return quantized.sum(axis=1) / np.maximum((ids != 0).sum(axis=1, keepdims=True), 1)


def exact(ids):
    """The same toy model without quantization: each row on its own."""
    embedded = np.sin(ids[..., None] * np.arange(1, 4)).astype(np.float32)
    embedded[ids == 0] = 0.0
    return embedded.sum(axis=1) / np.maximum((ids != 0).sum(axis=1, keepdims=True), 1)


def test_row_contexts_hold_the_same_rows_alone_together_padded_and_among_random_rows():
    ids = np.array([[5, 7, 9, 0], [3, 0, 0, 0], [4, 4, 0, 0]])
    contexts = row_contexts(ids, MAX_LEN, VOCAB_SIZE, batch_size=8)
    assert [row.tolist() for row in contexts.rows] == [[[5, 7, 9]], [[3]], [[4, 4]]]
    names = [name for name, _, _ in contexts.batches]
    assert names == ["together, width 4", f"padded to max_len={MAX_LEN}",
                     "among 5 random rows (1)", "among 5 random rows (2)"]
    for name, batch, places in contexts.batches:
        assert batch.dtype == np.int32 and len(places) == 3
        width = 4 if name.startswith("together") else MAX_LEN
        assert batch.shape == (len(batch), width)
        for row, place in zip(ids, places, strict=True):
            assert np.array_equal(batch[place, :4], row) and not batch[place, 4:].any()
        others = np.delete(batch, places, axis=0)
        assert others.max(initial=0) < VOCAB_SIZE and all(line[0] > 0 for line in others)
    (_, first, _), (_, second, _) = contexts.batches[2:]
    assert not np.array_equal(first, second)  # two sets of batch-mates
    assert row_contexts(ids, MAX_LEN, VOCAB_SIZE, batch_size=8).batches[2][1].tolist() == \
        first.tolist()  # seeded


def test_row_dependence_is_zero_for_a_row_wise_model_and_catches_batch_wide_scales():
    contexts = row_contexts(parity_cases(MAX_LEN, VOCAB_SIZE)[-1].token_ids, MAX_LEN,
                            VOCAB_SIZE)
    assert row_dependence(exact, contexts) == (0.0, "none")
    difference, where = row_dependence(dynamic_like, contexts)
    assert difference > 1e-3 and where.startswith("row ")
    assert row_dependence(lambda ids: exact(ids) + len(ids) * 1e-6, contexts)[0] == \
        pytest.approx(31e-6, rel=1e-3)  # alone (1 row) vs among 32: small, and still seen


def test_row_dependence_of_a_language_model_counts_real_positions_only():
    def language_model(ids, at_padding=0.0):
        logits = np.repeat(ids[..., None].astype(np.float32), 5, axis=-1)  # [b, n, 5]
        logits[ids == 0] = at_padding * len(ids)  # what padded positions say: ignored
        return logits

    contexts = row_contexts(np.array([[5, 7, 0], [3, 0, 0]]), MAX_LEN, VOCAB_SIZE)
    assert row_dependence(lambda ids: language_model(ids, 1.0), contexts) == (0.0, "none")
    assert row_dependence(lambda ids: language_model(ids) + len(ids), contexts)[0] > 1


def test_quantized_candidate_fails_on_row_dependence_alone_and_without_the_check():
    cases = parity_cases(MAX_LEN, VOCAB_SIZE, batch_sizes=(1, 7))
    contexts = row_contexts(cases[-1].token_ids, MAX_LEN, VOCAB_SIZE)
    report = compare_runtimes(exact, {}, cases, quantized={"int8 dynamic": dynamic_like},
                              contexts=contexts)
    (result,) = report.agreements
    assert result.agreement == 1.0 and not result.passed and not result.row_independent
    assert result.row_dependence > TOLERANCE and result.row_tolerance == TOLERANCE
    assert f"FAIL (row dependence, worst: {result.row_worst_case})" in report.table()
    again = ParityReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    unchecked = compare_runtimes(exact, {}, cases, quantized={"int8": exact}).agreements[0]
    assert unchecked.row_dependence is None and not unchecked.passed  # never unchecked
    assert "not run" in ParityReport((), agreements=(unchecked,)).table()


def test_agreement_is_measured_on_representative_cases_when_given():
    def flips_rows_holding_id_3(ids):
        logits = np.stack([np.ones(len(ids)), np.zeros(len(ids))], axis=1)
        logits[(ids == 3).any(axis=1)] = [0.0, 1.0]
        return logits

    def reference(ids):
        return np.stack([np.ones(len(ids)), np.zeros(len(ids))], axis=1)

    battery = parity_cases(MAX_LEN, VOCAB_SIZE)
    rows = check_representative_ids(np.array([[5, 7, 9], [4, 0, 0]] * 20), MAX_LEN,
                                    VOCAB_SIZE)
    contexts = row_contexts(rows, MAX_LEN, VOCAB_SIZE)
    on_battery = compare_runtimes(reference, {}, battery, contexts=contexts,
                                  quantized={"int8": flips_rows_holding_id_3}).agreements[0]
    assert on_battery.agreement < 0.99 and not on_battery.passed
    cases = representative_cases(rows)
    assert [case.name for case in cases] == ["representative rows 0-31",
                                             "representative rows 32-39"]
    on_data = compare_runtimes(reference, {}, battery, quantized_cases=cases,
                               quantized_data="40 representative rows", contexts=contexts,
                               quantized={"int8": flips_rows_holding_id_3}).agreements[0]
    assert (on_data.agreement, on_data.predictions, on_data.data, on_data.passed) == (
        1.0, 40, "40 representative rows", True)


@pytest.mark.parametrize(("ids", "message"), [
    (np.array([[1.0, 2.0]]), r"must be integers.*Received: dtype float64"),
    (np.array([[True, False]]), r"must be integers.*Received: dtype bool"),
    (np.array([1, 2, 3]), r"wrong shape.*Received: shape \(3,\)"),
    (np.zeros((0, 4), np.int32), r"wrong shape.*Received: shape \(0, 4\)"),
    (np.ones((2, MAX_LEN + 1), np.int32), rf"max_len={MAX_LEN}.*Received: shape \(2, 17\)"),
    (np.array([[1, -1]]), r"outside \[0, vocab_size=50\).*Received: id -1 at \[0, 1\]"),
    (np.array([[1, 2], [0, 0]]), r"rows of padding only.*1 such row\(s\), the first at row 1"),
    (np.array([[1, 2], [3, 0], [0, 4]]), r"real id after padding.*Received: row 2: \[0, 4\]"),
])
def test_representative_ids_are_checked(ids, message):
    with pytest.raises(ValueError, match=message):
        check_representative_ids(ids, MAX_LEN, VOCAB_SIZE)


def test_representative_ids_come_back_as_int32():
    ids = check_representative_ids(np.array([[3, 4, 0], [5, 0, 0]], np.int64), MAX_LEN,
                                   VOCAB_SIZE)
    assert ids.dtype == np.int32 and ids.tolist() == [[3, 4, 0], [5, 0, 0]]
    assert check_representative_ids([[1, 2]], MAX_LEN, VOCAB_SIZE).tolist() == [[1, 2]]


def test_empty_report_is_not_ok():
    assert not ParityReport(pairs=()).ok


@pytest.fixture(scope="module")
def runtimes():
    """name -> (keras, {candidate: runtime}) for the configurations checked on drawn batches."""
    loaded = {}
    for name in DRAWN_CASES:
        model, result = exported(name)
        loaded[name] = (keras_runtime(model), {
            "savedmodel": savedmodel_runtime(result.path),
            "onnxruntime (basic)": runtime.load(result.onnx_path, optimization="basic").predict,
            "onnxruntime (all)": runtime.load(result.path, optimization="all",
                                              variant="portable").predict,
            "onnxruntime optimized (all)": runtime.load(result.optimized_path).predict,
        })
    return loaded


@st.composite
def padded_batches(draw):
    """A batch of 1..32 rows of 1..MAX_LEN real ids, right-padded with 0 to the longest."""
    lengths = draw(st.lists(st.integers(1, MAX_LEN), min_size=1, max_size=32))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), max(lengths)), np.int32)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, VOCAB_SIZE, size=length)
    return ids


@pytest.mark.parametrize("name", DRAWN_CASES)
@settings(max_examples=40)
@given(token_ids=padded_batches())
def test_every_runtime_matches_keras_on_drawn_batches(runtimes, name, token_ids):
    keras_logits, candidates = runtimes[name]
    expected = keras_logits(token_ids)
    for candidate, run in candidates.items():
        max_abs, _ = diff_stats(expected, run(token_ids))
        assert max_abs <= TOLERANCE, f"{name}: keras vs {candidate}: max |diff| {max_abs:.3g}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_time_battery_passed_and_was_recorded(name):
    _, result = exported(name)
    assert result.parity.ok
    assert [pair.pair for pair in result.parity.pairs] == [
        "keras vs model.keras", "keras vs savedmodel", "keras vs savedmodel int64",
        "keras vs onnxruntime (basic)", "keras vs onnxruntime (all)",
        "keras vs onnxruntime optimized (basic)", "keras vs onnxruntime optimized (all)"]
    assert all(pair.cases == 20 for pair in result.parity.pairs)
    recorded = ParityReport.from_dict(json.loads((result.path / "parity.json").read_text()))
    assert recorded == result.parity


def test_cases_cover_every_kind_activation_and_norm():
    covered = {(case.kind, case.activation, case.norm_first) for case in CASES.values()}
    assert covered == set(itertools.product(("classifier", "language_model"),
                                            ka.config.ACTIVATIONS, (False, True)))
    assert {case.kind for case in CASES.values() if case.num_layers >= 2} == {
        "classifier", "language_model"}
    assert {CASES[name].kind for name in DRAWN_CASES} == {"classifier", "language_model"}


def test_battery_tells_exact_gelu_from_its_tanh_approximation():
    """A converter that swapped erf-gelu for tanh-gelu would be caught: the battery at 1e-5
    separates the two with the same weights."""
    exact = ka.build_classifier(tiny_config("gelu"))
    approximate = ka.build_classifier(tiny_config("gelu_tanh"))
    approximate.set_weights(exact.get_weights())
    report = compare_runtimes(keras_runtime(exact), {"tanh": keras_runtime(approximate)},
                              parity_cases(MAX_LEN, VOCAB_SIZE))
    assert not report.ok and report.pairs[0].max_abs_diff > 10 * TOLERANCE


def test_tolerance_rises_to_three_times_the_fp32_floor_only_when_larger():
    from export.verification.parity import FLOOR_FACTOR, TOLERANCE, effective_tolerance

    assert effective_tolerance(TOLERANCE, 1e-7) == TOLERANCE
    assert effective_tolerance(TOLERANCE, None) == TOLERANCE
    assert effective_tolerance(TOLERANCE, float("nan")) == TOLERANCE
    assert effective_tolerance(TOLERANCE, 2e-5) == FLOOR_FACTOR * 2e-5


def test_fp32_floor_is_measured_against_float64_and_reported():
    import keras

    import keras_attn as ka
    from export.verification.cases import parity_cases
    from export.verification.verifier import check_parity, fp32_error_floor

    keras.utils.set_random_seed(0)
    config = ka.ModelConfig(vocab_size=30, max_len=8, d_model=16, num_heads=2, ff_dim=32,
                            num_layers=1, num_classes=2)
    model = ka.build_classifier(config)
    floor = fp32_error_floor(model, parity_cases(8, 30))
    assert 0 < floor < 1e-5  # untrained: fp32 rounding only, and not exactly zero
    assert keras.config.dtype_policy().name == "float32"  # the float64 twin left no trace
    # Scaled-up weights amplify rounding: the floor grows with them.
    model.set_weights([w * 30 for w in model.get_weights()])
    assert fp32_error_floor(model, parity_cases(8, 30)) > floor * 10
    report = check_parity(model, {}, 8, 30)
    assert report.fp32_floor is not None and "fp32 error floor" in report.table()
