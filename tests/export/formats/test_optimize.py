"""export/formats/optimize.py and export/formats/fusion_rules.py: the onnxruntime-only files of an
export.

model.optimized.onnx ships for every exported configuration with one fused attention per block
and every LayerNorm fused, and passes the fp32 battery; model.int8.onnx ships only within its
accuracy bound and when a row's logits do not depend on its batch, checked on representative
ids when the export is given some; a file that cannot be built or fails its check is left out,
with the reason in the manifest, and never ships unchecked.
"""

import collections
import json
import os
import shutil

import numpy as np
import onnx
import pytest
from export_cases import CASES, CLASSIFIER, build_model, drift, exported, exported_confident

import export.exporter
import export.formats.optimize
import keras_attn as ka
from export import ParityReport, export_model, runtime
from export.artifact.manifest import sha256_of
from export.verification.cases import SEED, parity_cases
from export.verification.parity import AgreementResult, PairResult
from export.verification.shipping import drop_failed

OPTIMIZED, INT8 = "model.optimized.onnx", "model.int8.onnx"
REPRESENTATIVE = "representative_ids.npy"


def op_counts(path):
    """{op: count}, ops outside the standard domain as "domain.op"."""
    return collections.Counter(
        f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        for node in onnx.load(path).graph.node)


def not_shipped(warned):
    """The exporter's warnings among those recorded (TensorFlow adds its own)."""
    return [str(w.message) for w in warned if "is not shipped" in str(w.message)]


def manifest_of(result):
    return json.loads(result.manifest_path.read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_optimized_file_ships_listed_and_checked_for_every_case(name):
    _, result = exported(name)
    assert result.optimized_path == result.path / OPTIMIZED and result.optimized_path.is_file()
    manifest = manifest_of(result)
    assert manifest["files"][OPTIMIZED]["sha256"] == sha256_of(result.optimized_path)
    entry = manifest["onnxruntime_files"][OPTIMIZED]
    assert entry["shipped"] and entry["built_from"] == "model.onnx"
    pairs = {pair.pair: pair for pair in result.parity.pairs}
    for level in ("basic", "all"):
        pair = pairs[f"keras vs onnxruntime optimized ({level})"]
        assert pair.passed and pair.cases == 20
    assert entry["max_abs_diff"] == max(pairs[f"keras vs onnxruntime optimized ({level})"]
                                        .max_abs_diff for level in ("basic", "all"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_fused_attention_per_block_and_every_layer_norm_fused(name):
    case, (_, result) = CASES[name], exported(name)
    norms = 2 * case.num_layers + int(case.norm_first)  # pre-norm adds a final norm
    optimized = op_counts(result.optimized_path)
    assert optimized["com.microsoft.Attention"] == case.num_layers
    assert optimized["LayerNormalization"] == norms
    assert not {"Softmax", "Split", "Transpose", "GlobalAveragePool", "Sqrt"} & set(optimized)
    assert manifest_of(result)["onnxruntime_files"][OPTIMIZED]["rewrites"] == {
        # four dense layers per block; the language model's output projection is a fifth
        "tensordot": 4 * case.num_layers + (case.kind == "language_model"),
        "layer_norm": norms, "attention": case.num_layers}
    portable = op_counts(result.onnx_path)  # the portable file keeps standard ops only
    assert "Softmax" in portable and not [op for op in portable if "." in op]


def test_optimized_model_keeps_the_metadata():
    _, result = exported(CLASSIFIER)
    props = {p.key: p.value for p in onnx.load(result.onnx_path).metadata_props}
    assert {p.key: p.value for p in onnx.load(result.optimized_path).metadata_props} == props
    assert len(props) >= 9


@pytest.mark.parametrize("name", sorted(CASES))
def test_int8_ships_only_within_its_bound_and_says_why_not(name):
    """Whether a random tiny model keeps 99% of its argmaxes in int8 depends on the CPU;
    either way the outcome must be recorded consistently."""
    _, result = exported(name)
    entry, files = manifest_of(result)["onnxruntime_files"][INT8], manifest_of(result)["files"]
    if entry["shipped"]:
        (agreement,) = result.parity.agreements
        assert result.int8_path.is_file() and INT8 in files
        assert agreement.pair == "keras vs onnxruntime int8 (all)" and agreement.passed
        assert entry["agreement"] == agreement.agreement >= 0.99
        assert entry["row_dependence"] == agreement.row_dependence <= entry["row_tolerance"]
    else:
        assert result.int8_path is None and INT8 not in files
        assert not (result.path / INT8).exists() and result.parity.agreements == ()
        assert entry["reason"].startswith(
            "failed the parity battery: keras vs onnxruntime int8 (all): argmax agreement ")
    assert entry.get("data", "").startswith("the parity battery's random ids") == (
        entry["shipped"])  # no representative ids were given: the manifest says so
    assert not (result.path / REPRESENTATIVE).exists()


def smallest_top1_margin(model) -> float:
    """The least gap between the largest and the second-largest logit of the Keras model over
    the parity battery's ids (those its int8 agreement is measured on)."""
    config = ka.config_from_model(model)
    margins = []
    for case in parity_cases(config.max_len, config.vocab_size, SEED):
        top = np.sort(np.asarray(model.predict(case.token_ids, verbose=0)), axis=-1)
        margins.append(float(np.min(top[:, -1] - top[:, -2])))
    return min(margins)


def test_int8_of_a_confident_classifier_ships_and_is_reported_apart():
    """int8 moves every logit (max_abs_diff > 0), by how much depends on the CPU's int8
    kernels: 0.034-0.076 over model seeds 0-24 on AVX512-VNNI, 0.557 on a CPU without them
    (issue 24), so a fixed bound fails by chance. The bound held here is the one that
    guarantees the argmaxes: less than half the reference's smallest top-1 margin, so that no
    logit moves far enough to reorder the top two (over seeds 0-24 that half-margin was at
    least 0.67)."""
    model, result = exported_confident()
    assert result.int8_path == result.path / INT8 and result.int8_path.is_file()
    (agreement,) = result.parity.agreements
    assert agreement.agreement == 1.0 and agreement.predictions == 210  # 20 batches' rows
    assert 0 < agreement.max_abs_diff < smallest_top1_margin(model) / 2
    assert all("int8" not in pair.pair for pair in result.parity.pairs)
    assert agreement.row_dependence <= agreement.row_tolerance == 1e-5 and agreement.passed
    table = result.parity.table()
    assert "int8: checked against its accuracy bound (argmax agreement), not element-wise" in table
    assert "keras vs onnxruntime int8 (all)  100.00% of 210    parity battery" in table
    recorded = json.loads((result.path / "parity.json").read_text())
    assert ParityReport.from_dict(recorded) == result.parity
    ops = op_counts(result.int8_path)
    assert ops["MatMulInteger"] >= 3 and ops["com.microsoft.QAttention"] == 1  # int8 kernels
    # every activation quantized with a fixed scale, none with one computed per batch
    assert ops["QuantizeLinear"] == ops["MatMulInteger"] + 1 and "DynamicQuantizeLinear" not in ops
    assert runtime.load(result.path, variant="int8").path == result.int8_path


def test_int8_weights_are_uint8_so_that_no_cpu_saturates():
    """Weights of the integer products are uint8 (U8U8): onnxruntime's U8S8 kernels saturate
    at 16 bits on x86 CPUs without VNNI, U8U8 never does (export.formats.optimize)."""
    _, result = exported_confident()
    graph = onnx.load(result.int8_path).graph
    initializers = {tensor.name: tensor.data_type for tensor in graph.initializer}
    weights = [node.input[1] for node in graph.node
               if node.op_type in ("MatMulInteger", "QAttention")]
    assert len(weights) >= 4
    assert {initializers[name] for name in weights} == {onnx.TensorProto.UINT8}


def test_a_rewrite_that_fails_leaves_both_files_out_and_says_why(tmp_path, monkeypatch):
    def broken_rewrite(proto):
        raise RuntimeError("no rule applies")

    monkeypatch.setattr(export.formats.optimize, "rewrite", broken_rewrite)
    with pytest.warns(RuntimeWarning) as warned:
        result = export_model(build_model(CLASSIFIER), tmp_path / "model")
    assert not_shipped(warned) == [
        "model.optimized.onnx is not shipped: the graph rewrite failed: RuntimeError: no rule "
        "applies", f"model.int8.onnx is not shipped: it is built from {OPTIMIZED}, which was "
        "not shipped"]
    assert result.optimized_path is None and result.int8_path is None
    manifest = manifest_of(result)
    assert manifest["onnxruntime_files"] == {
        OPTIMIZED: {"shipped": False,
                    "reason": "the graph rewrite failed: RuntimeError: no rule applies"},
        INT8: {"shipped": False, "reason": f"it is built from {OPTIMIZED}, which was not "
                                           "shipped"}}
    assert not {OPTIMIZED, INT8} & (set(manifest["files"]) | set(os.listdir(result.path)))
    assert runtime.load(result.path).path == result.onnx_path  # served from model.onnx
    assert export.verify(result.path).ok


def test_optimized_file_that_fails_parity_is_left_out_with_its_int8(tmp_path, monkeypatch):
    model, _ = exported_confident()  # its int8 file passes: it goes only with its source
    drift(monkeypatch, "onnxruntime optimized (all)")
    with pytest.warns(RuntimeWarning) as warned:
        result = export_model(model, tmp_path / "model")
    first, second = not_shipped(warned)
    assert first.startswith("model.optimized.onnx is not shipped: failed the parity battery: "
                            "keras vs onnxruntime optimized (all): max abs diff 0.001")
    assert second.startswith("model.int8.onnx is not shipped")
    entries = manifest_of(result)["onnxruntime_files"]
    assert not entries[OPTIMIZED]["shipped"] and not entries[INT8]["shipped"]
    assert entries[INT8]["reason"] == f"it is built from {OPTIMIZED}, which was not shipped"
    assert not {OPTIMIZED, INT8} & (set(manifest_of(result)["files"])
                                    | set(os.listdir(result.path)))
    assert [pair.pair for pair in result.parity.pairs if "onnxruntime" in pair.pair] == [
        "keras vs onnxruntime (basic)", "keras vs onnxruntime (all)"]
    assert result.parity.agreements == () and result.parity.ok


def test_a_file_onnxruntime_cannot_load_is_left_out(tmp_path, monkeypatch):
    shutil.copy(exported(CLASSIFIER)[1].onnx_path, tmp_path / "model.onnx")
    monkeypatch.setattr(export.formats.optimize, "quantize_int8",
                        lambda source, out, calibration: out.write_bytes(b"not a model"))
    entries = export.exporter.write_onnxruntime_files(tmp_path, 16, 50)
    assert entries[OPTIMIZED]["shipped"]
    assert not entries[INT8]["shipped"]
    assert entries[INT8]["reason"].startswith("onnxruntime cannot load it: ")
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", OPTIMIZED]


def _report(optimized_passes=True, int8_agreement=1.0, with_int8=True, row_dependence=0.0):
    pairs = (PairResult("keras vs onnxruntime (all)", 1e-6, 1e-5, 1e-5, "x", 20),
             PairResult("keras vs onnxruntime optimized (all)",
                        1e-6 if optimized_passes else 1e-3, 1e-5, 1e-5, "batch=7 ragged", 20))
    agreements = (AgreementResult("keras vs onnxruntime int8 (all)", int8_agreement, 0.99,
                                  210, 0.05, "batch=32 ragged", "parity battery",
                                  row_dependence, 1e-5, "row 3 among 16 random rows (1)"),
                  ) if with_int8 else ()
    return ParityReport(pairs, agreements=agreements)


def _entries(folder):
    for name in (OPTIMIZED, INT8, REPRESENTATIVE):
        (folder / name).write_bytes(b"onnx")
    return {OPTIMIZED: {"shipped": True, "rewrites": {}}, INT8: {"shipped": True}}


def test_drop_failed_keeps_what_passed_and_records_the_measures(tmp_path):
    entries = _entries(tmp_path)
    report = drop_failed(_report(), tmp_path, entries)
    assert report == _report()
    assert entries[OPTIMIZED]["max_abs_diff"] == 1e-6 and entries[INT8]["agreement"] == 1.0
    assert entries[INT8]["row_dependence"] == 0.0 and entries[INT8]["row_tolerance"] == 1e-5
    assert (tmp_path / OPTIMIZED).exists() and (tmp_path / INT8).exists()


def test_drop_failed_removes_int8_below_its_bound_only(tmp_path):
    entries = _entries(tmp_path)
    report = drop_failed(_report(int8_agreement=0.98), tmp_path, entries)
    assert entries[INT8] == {"shipped": False, "reason": (
        "failed the parity battery: keras vs onnxruntime int8 (all): argmax agreement 98.00% "
        "< 99% on parity battery (worst: batch=32 ragged)")}
    assert report.agreements == () and len(report.pairs) == 2 and report.ok
    assert not (tmp_path / INT8).exists() and (tmp_path / OPTIMIZED).exists()
    assert not (tmp_path / REPRESENTATIVE).exists()  # its data goes with it


def test_drop_failed_removes_int8_whose_rows_depend_on_their_batch(tmp_path):
    entries = _entries(tmp_path)
    report = drop_failed(_report(row_dependence=0.44), tmp_path, entries)
    assert entries[INT8] == {"shipped": False, "reason": (
        "failed the parity battery: keras vs onnxruntime int8 (all): a row's logits depend on "
        "its batch: max abs diff 0.44 > 1e-05 (worst: row 3 among 16 random rows (1))")}
    assert report.agreements == () and report.ok
    assert not (tmp_path / INT8).exists() and not (tmp_path / REPRESENTATIVE).exists()


def test_drop_failed_never_ships_a_file_the_battery_did_not_check(tmp_path):
    entries = _entries(tmp_path)
    drop_failed(_report(with_int8=False), tmp_path, entries)
    assert entries[INT8] == {"shipped": False, "reason": "the parity battery did not check it"}
    assert not (tmp_path / INT8).exists()


def test_drop_failed_takes_int8_out_with_a_failed_optimized_file(tmp_path):
    entries = _entries(tmp_path)
    report = drop_failed(_report(optimized_passes=False), tmp_path, entries)
    assert entries[OPTIMIZED]["reason"] == (
        "failed the parity battery: keras vs onnxruntime optimized (all): max abs diff 0.001 "
        "> 1e-05 (worst: batch=7 ragged)")
    assert not entries[INT8]["shipped"] and not os.listdir(tmp_path)
    assert [pair.pair for pair in report.pairs] == ["keras vs onnxruntime (all)"]


def test_the_portable_pairs_are_never_dropped(tmp_path):
    """A failing model.onnx must fail the export (ParityError), not vanish from the report."""
    failing = ParityReport((PairResult("keras vs onnxruntime (all)", 1.0, 1.0, 1e-5, "x", 20),))
    assert drop_failed(failing, tmp_path, {}) == failing


def dynamic_int8(source, out, calibration=None):
    """model.int8.onnx as the export built it before: onnxruntime's quantize_dynamic, whose
    activation scales are computed at run time over the whole batch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(os.fspath(source), os.fspath(out), weight_type=QuantType.QInt8)


def batch_effect(predict, max_len=16, vocab_size=50, seed=7):
    """The largest change of 8 random rows' logits between running each alone at its own
    length, alone padded with 0 to max_len, and inside batches of 32 random rows."""
    rng = np.random.default_rng(seed)
    rows = [rng.integers(1, vocab_size, size=n, dtype=np.int32)
            for n in rng.integers(1, max_len, size=8)]
    alone = [predict(row[None])[0] for row in rows]
    worst = 0.0
    for row, own in zip(rows, alone, strict=True):
        padded = np.zeros((1, max_len), np.int32)
        padded[0, :len(row)] = row
        worst = max(worst, float(np.abs(predict(padded)[0] - own).max()))
    for _ in range(3):
        batch = rng.integers(1, vocab_size, size=(32, max_len), dtype=np.int32)
        for line, length in zip(batch, rng.integers(1, max_len + 1, size=32), strict=True):
            line[length:] = 0
        places = rng.choice(32, size=len(rows), replace=False)
        for place, row in zip(places, rows, strict=True):
            batch[place] = 0
            batch[place, :len(row)] = row
        logits = predict(batch)
        worst = max(worst, max(float(np.abs(logits[place] - own).max())
                               for place, own in zip(places, alone, strict=True)))
    return worst


def test_shipped_int8_answers_do_not_depend_on_the_batch_unlike_dynamic_quantization(tmp_path):
    _, result = exported_confident()
    shipped = runtime.load(result.path, variant="int8")
    assert shipped.path == result.int8_path
    assert batch_effect(shipped.predict) <= 1e-5  # measured: 0, the fp32 tolerance allowed
    # The same optimized graph through quantize_dynamic, as model.int8.onnx was built before:
    # one activation scale per batch, so a row's logits move with its batch-mates.
    dynamic = tmp_path / INT8
    dynamic_int8(result.optimized_path, dynamic)
    assert batch_effect(runtime.load(dynamic).predict) > 1e-3


def test_int8_whose_rows_depend_on_their_batch_is_left_out_and_says_why(tmp_path, monkeypatch):
    model, _ = exported_confident()  # its statically quantized int8 file ships
    monkeypatch.setattr(export.formats.optimize, "quantize_int8", dynamic_int8)
    with pytest.warns(RuntimeWarning) as warned:
        result = export_model(model, tmp_path / "model")
    (message,) = not_shipped(warned)
    reason = manifest_of(result)["onnxruntime_files"][INT8]["reason"]
    assert message == f"{INT8} is not shipped: {reason}"
    assert reason.startswith("failed the parity battery: keras vs onnxruntime int8 (all): a "
                             "row's logits depend on its batch: max abs diff ")
    assert result.int8_path is None and result.parity.agreements == ()
    assert not {INT8, REPRESENTATIVE} & (set(manifest_of(result)["files"])
                                         | set(os.listdir(result.path)))
    assert result.optimized_path.is_file()  # the fp32 files are not affected


def representative_rows(count=40, width=12, vocab_size=50, seed=3):
    """Right-padded random rows (int64, as np.load gives back token ids), 1 to width ids."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((count, width), np.int64)
    for row, length in zip(ids, rng.integers(1, width + 1, size=count), strict=True):
        row[:length] = rng.integers(1, vocab_size, size=length)
    return ids


def test_int8_is_calibrated_and_checked_on_representative_ids(tmp_path, monkeypatch):
    model, _ = exported_confident()
    ids = representative_rows()
    calibrated_on = []
    quantize = export.formats.optimize.quantize_int8

    def recording(source, out, calibration):
        calibrated_on.extend(calibration)
        quantize(source, out, calibration)

    monkeypatch.setattr(export.formats.optimize, "quantize_int8", recording)
    result = export_model(model, tmp_path / "model", representative_ids=ids)
    assert np.array_equal(np.concatenate(calibrated_on), ids)
    assert [batch.shape for batch in calibrated_on] == [(32, 12), (8, 12)]
    entry = manifest_of(result)["onnxruntime_files"][INT8]
    assert entry["shipped"] and entry["data"] == (
        "40 representative rows given to export_model (kept as representative_ids.npy)")
    (agreement,) = result.parity.agreements
    assert (agreement.data, agreement.predictions, agreement.worst_case) == (
        "40 representative rows", 40, "representative rows 0-31")
    assert agreement.passed and agreement.row_dependence <= 1e-5
    kept = np.load(result.path / REPRESENTATIVE)
    assert kept.dtype == np.int32 and np.array_equal(kept, ids)
    assert REPRESENTATIVE in manifest_of(result)["files"]
    assert batch_effect(runtime.load(result.int8_path).predict) <= 1e-5
    verified = export.verify(result.path)  # later checks use the same data
    assert verified.ok and verified.parity.agreements[0].data == "40 representative rows"
    assert verified.parity.agreements[0].predictions == 40


def test_bad_representative_ids_are_refused_before_anything_is_written(tmp_path):
    model, _ = exported_confident()
    ids = representative_rows()
    ids[5, 0] = 50  # vocab_size is 50
    with pytest.raises(ValueError, match=r"outside \[0, vocab_size=50\).*Received: id 50 at "
                                         r"\[5, 0\]"):
        export_model(model, tmp_path / "model", representative_ids=ids)
    assert not (tmp_path / "model").exists() or not os.listdir(tmp_path / "model")


def test_a_run_keeps_up_to_512_held_out_rows_that_hold_a_real_id(tmp_path):
    from export.artifact.representative_ids import load_representative_ids, save_representative_ids

    assert load_representative_ids(tmp_path) is None
    ids = np.zeros((600, 5), np.int64)
    ids[:, 0] = np.arange(600) % 7  # every 7th row is padding only, and is left out
    path = save_representative_ids(tmp_path, ids)
    assert path == tmp_path / REPRESENTATIVE
    kept = load_representative_ids(tmp_path)
    assert kept.dtype == np.int32 and kept.shape == (512, 5) and kept[:, 0].all()
    assert np.array_equal(kept, ids[ids[:, 0] != 0][:512])
