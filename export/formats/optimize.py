"""The onnxruntime-only files of a version folder: built from `model.onnx`, shipped only checked.

    model.optimized.onnx   model.onnx with tf2onnx's small ops rewritten
    (`export.formats.fusion_rules`)
                           into LayerNormalization and com.microsoft.Attention: one kernel
                           each where onnxruntime otherwise runs a dozen ops.
    model.int8.onnx        the optimized graph with int8 weights and uint8 activations whose
                           scales are fixed at export (calibrated on representative token
                           ids), so that a row's answer never depends on the rest of its
                           batch (`quantize_int8`).

Both use com.microsoft ops, so they run in onnxruntime only; `model.onnx` stays the portable
file of the export contract. The exporter runs both through the parity battery: the optimized
graph at the fp32 tolerance, like `model.onnx`; the int8 graph against its accuracy bound
(argmax agreement, `export.verification.parity.MIN_AGREEMENT`) and for row independence, reported
apart.

Why static: `quantize_dynamic` computes one activation scale per tensor at run time, over the
whole batch, so a row's logits moved with its batch-mates and with the padding width (by up to
0.44 on a trained demo model, enough to flip an answer). Static scales are constants:
each row is quantized alone. The representative ids (`export_model(...,
representative_ids=...)`, the run's held-out texts) calibrate them and are what the int8
gate checks on; without them, the parity battery's random ids do both, and the manifest says
so.

A file that cannot be built or loaded, or fails its check, is not shipped: it is removed
before the version is moved into place, the reason is recorded in the manifest
(`onnxruntime_files`), and the exporter raises a `RuntimeWarning` saying so. The export itself
goes on: the portable files are the contract, these two are speed-ups, and
`export.runtime.predictor.load` falls back to `model.onnx` without them. An unchecked file never
ships.

onnxscript, onnx_ir and onnxruntime.quantization are needed here, at export time; serving
(`export.runtime.predictor`) needs none of them.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import onnxscript.optimizer
from onnxscript.rewriter import pattern

from export.artifact.manifest import INT8_FILENAME, ONNX_FILENAME, OPTIMIZED_FILENAME
from export.formats.fusion_rules import (
    MS_DOMAIN,
    MomentsLayerNorm,
    SplitQKVAttention,
    TensordotToMatMul,
)
from export.verification.cases import parity_cases, representative_cases
from export.verification.parity import MIN_AGREEMENT, AgreementResult, PairResult, ParityReport
from export.verification.verifier import REPRESENTATIVE_FILENAME, runtime_file

# Applied in this order: each stage matches the graph the previous one left (the attention
# rule expects its projection as a plain MatMul, which the tensordot stage makes).
STAGES: dict[str, tuple[type[pattern.RewriteRuleClassBase], ...]] = {
    "tensordot": (TensordotToMatMul,),
    "layer_norm": (MomentsLayerNorm,),
    "attention": (SplitQKVAttention,),
}


def rewrite(proto: onnx.ModelProto,
            stages: Mapping[str, Sequence[type[pattern.RewriteRuleClassBase]]] = STAGES,
            ) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Applies the rules of each stage in turn.

    Args:
        proto: a tf2onnx export of a keras_attn model (`model.onnx`).
        stages: stage name -> rule classes, applied in order (default: `STAGES`).

    Returns:
        (the rewritten, checked model with the original's metadata_props, {stage: rewrites}).
    """
    # The rules check ranks, so every intermediate value needs its shape.
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))
    model.opset_imports.setdefault(MS_DOMAIN, 1)
    counts = {}
    for stage, rules in stages.items():
        rule_set = pattern.RewriteRuleSet([rule.rule() for rule in rules], commute=True)
        counts[stage] = rule_set.apply_to_model(model)
        onnxscript.optimizer.remove_unused_nodes(model)  # the shape arithmetic left behind
    rewritten = ir.serde.serialize_model(model)
    _copy_metadata(proto, rewritten)
    onnx.checker.check_model(rewritten)
    return rewritten, counts


# How model.int8.onnx is built: what the manifest says, and what `quantize_int8` does.
INT8_METHOD = ("onnxruntime.quantization.quantize_dynamic's graph (int8 weights per tensor: "
               "dense layers, the attention's query-key-value projection, the token table), "
               "with every run-time activation scale (DynamicQuantizeLinear) replaced by a "
               "fixed uint8 scale and zero point calibrated (MinMax) on 'data'")


def quantize_int8(source: str | os.PathLike, out: str | os.PathLike,
                  calibration: Sequence[np.ndarray]) -> None:
    """Writes `source` with int8 weights and statically quantized activations, keeping its
    metadata_props.

    onnxruntime's `quantize_dynamic` writes the fastest int8 graph for ours (QAttention for
    the fused attention, MatMulInteger for the dense layers), but quantizes each activation
    with a scale computed at run time over the whole batch (DynamicQuantizeLinear), so that a
    row's logits depend on its batch-mates. Here each of those is replaced by QuantizeLinear
    with a constant scale and zero point, computed as DynamicQuantizeLinear computes them but
    from the range the activation takes over `calibration` (onnxruntime's MinMax calibrator).
    `quantize_static` gives row-independent files too, but keeps the attention in fp32: it
    measured slower than this (see the README's int8 section).

    Args:
        source, out: ONNX files (the optimized graph, and where its int8 version goes).
        calibration: batches of token ids (int32 `[batch, width]`) like those to be served.
            Activations outside the range they reach saturate.

    Raises:
        ValueError: `calibration` holds no batch.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantType,
        create_calibrator,
        quantize_dynamic,
    )

    if not calibration:
        raise ValueError("quantize_int8 needs calibration data: at least one batch of token "
                         "ids. Received: no batch")
    input_name = onnx.load(os.fspath(source), load_external_data=False).graph.input[0].name

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{input_name: np.asarray(ids, np.int32)}
                                 for ids in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    # The quantizer logs a hint to pre-process (ORT's own graph optimizations) on the root
    # logger at every call; the optimized graph has ours, and its check is what counts.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="keras-attn-int8-") as tmp:
            dynamic = os.path.join(tmp, "dynamic.onnx")
            quantize_dynamic(os.fspath(source), dynamic, weight_type=QuantType.QInt8)
            calibrator = create_calibrator(
                dynamic, op_types_to_calibrate=["DynamicQuantizeLinear"],
                augmented_model_path=os.path.join(tmp, "augmented.onnx"),
                calibrate_method=CalibrationMethod.MinMax)
            calibrator.collect_data(Batches())
            ranges = calibrator.compute_data()
            quantized = onnx.load(dynamic)
    finally:
        root.setLevel(level)
    graph = quantized.graph
    for index, node in enumerate(graph.node):
        if node.op_type == "DynamicQuantizeLinear":
            low, high = (float(np.asarray(value).reshape(-1)[0])
                         for value in ranges[node.input[0]].range_value)
            graph.node[index].CopyFrom(_fixed_quantize(node, graph, low, high))
    _copy_metadata(onnx.load(os.fspath(source), load_external_data=False), quantized)
    onnx.checker.check_model(quantized)
    onnx.save_model(quantized, os.fspath(out))


def _fixed_quantize(node: onnx.NodeProto, graph: onnx.GraphProto, low: float,
                    high: float) -> onnx.NodeProto:
    """QuantizeLinear for a DynamicQuantizeLinear node, its scale and zero point constants
    (initializers under the names of the node's scale and zero-point outputs) computed by
    DynamicQuantizeLinear's own formula from the range [low, high]: the range widened to
    hold 0, scale = width / 255, zero point = round(-low / scale) in uint8."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255 if high > low else 1.0
    zero_point = int(np.clip(np.round(-low / scale), 0, 255))
    quantized, scale_name, zero_point_name = node.output
    graph.initializer.extend([
        onnx.numpy_helper.from_array(np.array(scale, np.float32), scale_name),
        onnx.numpy_helper.from_array(np.array(zero_point, np.uint8), zero_point_name)])
    return onnx.helper.make_node("QuantizeLinear", [node.input[0], scale_name, zero_point_name],
                                 [quantized], name=f"{node.name}_calibrated")


def calibration_data(folder: Path, representative_ids: np.ndarray | None,
                     ) -> tuple[list[np.ndarray], str]:
    """(batches of token ids to calibrate model.int8.onnx on, what they are for the manifest):
    `representative_ids` (checked, `export.verification.cases.check_representative_ids`) in
    batches, or
    without them the parity battery's random ids for `folder/model.onnx`'s max_len and
    vocab_size (read from its metadata)."""
    if representative_ids is not None:
        return ([case.token_ids for case in representative_cases(representative_ids)],
                f"{len(representative_ids)} representative rows given to export_model "
                f"(kept as {REPRESENTATIVE_FILENAME})")
    props = {prop.key: prop.value for prop in onnx.load(
        os.fspath(folder / ONNX_FILENAME), load_external_data=False).metadata_props}
    cases = parity_cases(int(props["max_len"]), int(props["vocab_size"]))
    return ([case.token_ids for case in cases],
            "the parity battery's random ids: export_model was given no representative_ids")


def _copy_metadata(source: onnx.ModelProto, target: onnx.ModelProto) -> None:
    """The runtime reads max_len, vocab_size and the config from metadata_props."""
    props = {prop.key: prop.value for prop in source.metadata_props}
    onnx.helper.set_model_props(target, props)


def write_onnxruntime_files(folder: Path, representative_ids: np.ndarray | None = None,
                            ) -> dict[str, dict[str, Any]]:
    """Builds `model.optimized.onnx` from `folder/model.onnx`, then `model.int8.onnx` from it,
    calibrated on `representative_ids` (checked int32 `[n, width]`), or on the parity
    battery's ids without them (see `calibration_data`).

    Returns:
        The manifest's `onnxruntime_files` entry: {filename: {"shipped": True, ...how it was
        built} or {"shipped": False, "reason": ...}}. Shipped means written, not yet checked:
        `drop_failed` settles that once the battery has run.
    """
    entries: dict[str, dict[str, Any]] = {}
    try:
        optimized, counts = rewrite(onnx.load(os.fspath(folder / ONNX_FILENAME)))
        onnx.save_model(optimized, os.fspath(folder / OPTIMIZED_FILENAME))
    except Exception as error:  # onnxscript and the checker raise many types
        _skip(entries, folder, OPTIMIZED_FILENAME,
              f"the graph rewrite failed: {type(error).__name__}: {error}")
    else:
        entries[OPTIMIZED_FILENAME] = {"shipped": True, "built_from": ONNX_FILENAME,
                                       "rewrites": counts}
        _check_loads(entries, folder, OPTIMIZED_FILENAME)
    if not entries[OPTIMIZED_FILENAME]["shipped"]:
        _skip(entries, folder, INT8_FILENAME, f"it is built from {OPTIMIZED_FILENAME}, "
              "which was not shipped")
        return entries
    try:
        calibration, data = calibration_data(folder, representative_ids)
        if representative_ids is not None:  # so that `verify` checks on the same data
            np.save(folder / REPRESENTATIVE_FILENAME, representative_ids, allow_pickle=False)
        quantize_int8(folder / OPTIMIZED_FILENAME, folder / INT8_FILENAME, calibration)
        entries[INT8_FILENAME] = {
            "shipped": True, "built_from": OPTIMIZED_FILENAME, "method": INT8_METHOD,
            "data": data,
            "bound": f"argmax agreement with Keras >= {MIN_AGREEMENT:.0%} on 'data' "
                     "(not element-wise), and row independence: a row's logits alone, "
                     "together, padded to max_len and among random rows within the fp32 "
                     "tolerance"}
    except Exception as error:
        _skip(entries, folder, INT8_FILENAME,
              f"quantization failed: {type(error).__name__}: {error}")
    else:
        _check_loads(entries, folder, INT8_FILENAME)
    return entries


def _check_loads(entries: dict[str, dict[str, Any]], folder: Path, filename: str) -> None:
    """Leaves the file out when onnxruntime cannot load it (so that the battery, which would
    stop the export at a file that does not load, never sees it)."""
    from export import runtime

    try:
        runtime.load(folder / filename)
    except Exception as error:
        _skip(entries, folder, filename,
              f"onnxruntime cannot load it: {type(error).__name__}: {error}")


def drop_failed(report: ParityReport, folder: Path,
                entries: dict[str, dict[str, Any]]) -> ParityReport:
    """Settles which onnxruntime-only files ship, once the battery has run.

    A file written by `write_onnxruntime_files` ships only when the battery checked it and
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
        _skip(entries, folder, filename, reason)
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


def _skip(entries: dict[str, dict[str, Any]], folder: Path, filename: str, reason: str) -> None:
    (folder / filename).unlink(missing_ok=True)
    if filename == INT8_FILENAME:  # its calibration and check data go with it
        (folder / REPRESENTATIVE_FILENAME).unlink(missing_ok=True)
    entries[filename] = {"shipped": False, "reason": reason}


def warn_not_shipped(entries: Mapping[str, Mapping[str, Any]]) -> None:
    """One RuntimeWarning per file left out, with the reason the manifest records."""
    for filename, entry in entries.items():
        if not entry["shipped"]:
            warnings.warn(f"{filename} is not shipped: {entry['reason']}", RuntimeWarning,
                          stacklevel=3)
