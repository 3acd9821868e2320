"""export/optimize.py and export/fusion_rules.py: the onnxruntime-only files of an export.

model.optimized.onnx ships for every exported configuration with one fused attention per block
and every LayerNorm fused, and passes the fp32 battery; model.int8.onnx ships only within its
accuracy bound; a file that cannot be built or fails its check is left out, with the reason in
the manifest, and never ships unchecked.
"""

import collections
import json
import os
import shutil

import onnx
import pytest
from export_cases import CASES, CLASSIFIER, build_model, drift, exported, exported_confident

import export.optimize
from export import ParityReport, export_model, runtime
from export.manifest import sha256_of
from export.parity import AgreementResult, PairResult

OPTIMIZED, INT8 = "model.optimized.onnx", "model.int8.onnx"


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
    else:
        assert result.int8_path is None and INT8 not in files
        assert not (result.path / INT8).exists() and result.parity.agreements == ()
        assert entry["reason"].startswith(
            "failed the parity battery: keras vs onnxruntime int8 (all): argmax agreement ")


def test_int8_of_a_confident_classifier_ships_and_is_reported_apart():
    _, result = exported_confident()
    assert result.int8_path == result.path / INT8 and result.int8_path.is_file()
    (agreement,) = result.parity.agreements
    assert agreement.agreement == 1.0 and agreement.predictions == 210  # 20 batches' rows
    assert 0 < agreement.max_abs_diff < 0.5  # not element-wise equal, and not far off
    assert all("int8" not in pair.pair for pair in result.parity.pairs)
    table = result.parity.table()
    assert "int8: checked against its accuracy bound (argmax agreement), not element-wise" in table
    assert "keras vs onnxruntime int8 (all)  100.00% of 210" in table
    recorded = json.loads((result.path / "parity.json").read_text())
    assert ParityReport.from_dict(recorded) == result.parity
    assert op_counts(result.int8_path)["MatMulInteger"] >= 3  # the dense layers, in int8
    assert runtime.load(result.path, variant="int8").path == result.int8_path


def test_a_rewrite_that_fails_leaves_both_files_out_and_says_why(tmp_path, monkeypatch):
    def broken_rewrite(proto):
        raise RuntimeError("no rule applies")

    monkeypatch.setattr(export.optimize, "rewrite", broken_rewrite)
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
    assert [pair.pair for pair in result.parity.pairs] == [
        "keras vs model.keras", "keras vs savedmodel", "keras vs onnxruntime (basic)",
        "keras vs onnxruntime (all)"]
    assert result.parity.agreements == () and result.parity.ok


def test_a_file_onnxruntime_cannot_load_is_left_out(tmp_path, monkeypatch):
    shutil.copy(exported(CLASSIFIER)[1].onnx_path, tmp_path / "model.onnx")
    monkeypatch.setattr(export.optimize, "quantize_int8",
                        lambda source, out: out.write_bytes(b"not a model"))
    entries = export.optimize.write_onnxruntime_files(tmp_path)
    assert entries[OPTIMIZED]["shipped"]
    assert not entries[INT8]["shipped"]
    assert entries[INT8]["reason"].startswith("onnxruntime cannot load it: ")
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", OPTIMIZED]


def _report(optimized_passes=True, int8_agreement=1.0, with_int8=True):
    pairs = (PairResult("keras vs onnxruntime (all)", 1e-6, 1e-5, 1e-5, "x", 20),
             PairResult("keras vs onnxruntime optimized (all)",
                        1e-6 if optimized_passes else 1e-3, 1e-5, 1e-5, "batch=7 ragged", 20))
    agreements = (AgreementResult("keras vs onnxruntime int8 (all)", int8_agreement, 0.99,
                                  210, 0.05, "batch=32 ragged"),) if with_int8 else ()
    return ParityReport(pairs, agreements=agreements)


def _entries(folder):
    for name in (OPTIMIZED, INT8):
        (folder / name).write_bytes(b"onnx")
    return {OPTIMIZED: {"shipped": True, "rewrites": {}}, INT8: {"shipped": True}}


def test_drop_failed_keeps_what_passed_and_records_the_measures(tmp_path):
    entries = _entries(tmp_path)
    report = export.optimize.drop_failed(_report(), tmp_path, entries)
    assert report == _report()
    assert entries[OPTIMIZED]["max_abs_diff"] == 1e-6 and entries[INT8]["agreement"] == 1.0
    assert (tmp_path / OPTIMIZED).exists() and (tmp_path / INT8).exists()


def test_drop_failed_removes_int8_below_its_bound_only(tmp_path):
    entries = _entries(tmp_path)
    report = export.optimize.drop_failed(_report(int8_agreement=0.98), tmp_path, entries)
    assert entries[INT8] == {"shipped": False, "reason": (
        "failed the parity battery: keras vs onnxruntime int8 (all): argmax agreement 98.00% "
        "< 99% (worst: batch=32 ragged)")}
    assert report.agreements == () and len(report.pairs) == 2 and report.ok
    assert not (tmp_path / INT8).exists() and (tmp_path / OPTIMIZED).exists()


def test_drop_failed_never_ships_a_file_the_battery_did_not_check(tmp_path):
    entries = _entries(tmp_path)
    export.optimize.drop_failed(_report(with_int8=False), tmp_path, entries)
    assert entries[INT8] == {"shipped": False, "reason": "the parity battery did not check it"}
    assert not (tmp_path / INT8).exists()


def test_drop_failed_takes_int8_out_with_a_failed_optimized_file(tmp_path):
    entries = _entries(tmp_path)
    report = export.optimize.drop_failed(_report(optimized_passes=False), tmp_path, entries)
    assert entries[OPTIMIZED]["reason"] == (
        "failed the parity battery: keras vs onnxruntime optimized (all): max abs diff 0.001 "
        "> 1e-05 (worst: batch=7 ragged)")
    assert not entries[INT8]["shipped"] and not os.listdir(tmp_path)
    assert [pair.pair for pair in report.pairs] == ["keras vs onnxruntime (all)"]


def test_the_portable_pairs_are_never_dropped(tmp_path):
    """A failing model.onnx must fail the export (ParityError), not vanish from the report."""
    failing = ParityReport((PairResult("keras vs onnxruntime (all)", 1.0, 1.0, 1e-5, "x", 20),))
    assert export.optimize.drop_failed(failing, tmp_path, {}) == failing
