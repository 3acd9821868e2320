"""The onnxruntime-only files of a version folder, built from `model.onnx`.

    model.optimized.onnx   model.onnx with tf2onnx's small ops rewritten
                           (`export.formats.fusion_rules`) into LayerNormalization and
                           com.microsoft.Attention: one kernel each where onnxruntime
                           otherwise runs a dozen ops.
    model.int8.onnx        the optimized graph with uint8 weights and activations whose
                           scales are fixed at export (calibrated on representative token
                           ids), so that a row's answer never depends on the rest of its
                           batch (`quantize_int8`).

Both use com.microsoft ops, so they run in onnxruntime only; `model.onnx` stays the portable
file of the export contract. This module writes them; the exporter then runs both through the
parity battery: the optimized graph at the fp32 tolerance, like `model.onnx`; the int8 graph
against its accuracy bound (argmax agreement, `export.verification.parity.MIN_AGREEMENT`) and
for row independence, reported apart.

Why static: `quantize_dynamic` computes one activation scale per tensor at run time, over the
whole batch, so a row's logits moved with its batch-mates and with the padding width (by up to
0.44 on a trained demo model, enough to flip an answer). Static scales are constants:
each row is quantized alone. The representative ids (`export_model(...,
representative_ids=...)`, the run's held-out texts) calibrate them and are what the int8
gate checks on; without them, the parity battery's random ids do both, and the manifest says
so (`export.verification.cases.calibration_data`).

A file that cannot be built or loaded, or fails its check, is not shipped: it is removed
(`left_out`) before the version is moved into place, the reason is recorded in the manifest
(`onnxruntime_files`), and the exporter raises a `RuntimeWarning` saying so
(`export.verification.shipping`). The export itself goes on: the portable files are the
contract, these two are speed-ups, and `export.runtime.predictor.load` falls back to
`model.onnx` without them. An unchecked file never ships.

onnxscript, onnx_ir and onnxruntime.quantization are needed here, at export time; serving
(`export.runtime.predictor`) needs none of them.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import onnxscript.optimizer
from onnxscript.rewriter import pattern

from export.artifact.manifest import (
    INT8_FILENAME,
    ONNX_FILENAME,
    OPTIMIZED_FILENAME,
    REPRESENTATIVE_FILENAME,
)
from export.formats.fusion_rules import (
    MS_DOMAIN,
    MomentsLayerNorm,
    SplitQKVAttention,
    TensordotToMatMul,
)

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
INT8_METHOD = ("onnxruntime.quantization.quantize_dynamic's graph (uint8 weights per tensor: "
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

    The weights are uint8 (U8U8), not int8: onnxruntime multiplies uint8 activations by int8
    weights with VPMADDUBSW on x86 CPUs without VNNI, which saturates at 16 bits, so the same
    U8S8 file agreed with Keras on 81% of a model's representative rows on an AVX2-only CPU
    and on 100% with VNNI. U8U8 does not saturate, gave 100% on both, and measured no slower
    (`export.runtime.predictor.EXACT_INT8_MATMUL` keeps older U8S8 files exact).

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
            quantize_dynamic(os.fspath(source), dynamic, weight_type=QuantType.QUInt8)
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


def _copy_metadata(source: onnx.ModelProto, target: onnx.ModelProto) -> None:
    """The runtime reads max_len, vocab_size and the config from metadata_props."""
    props = {prop.key: prop.value for prop in source.metadata_props}
    onnx.helper.set_model_props(target, props)


def write_optimized(folder: Path) -> dict[str, Any]:
    """Writes `model.optimized.onnx`: `folder/model.onnx` rewritten (`rewrite`).

    Returns:
        Its `onnxruntime_files` entry: {"shipped": True, "built_from", "rewrites"}, or
        {"shipped": False, "reason"} when the rewrite failed (then nothing is left behind).
        Shipped means written, not yet checked: the exporter settles that
        (`export.verification.shipping`).
    """
    try:
        optimized, counts = rewrite(onnx.load(os.fspath(folder / ONNX_FILENAME)))
        onnx.save_model(optimized, os.fspath(folder / OPTIMIZED_FILENAME))
    except Exception as error:  # onnxscript and the checker raise many types
        return left_out(folder, OPTIMIZED_FILENAME,
                        f"the graph rewrite failed: {type(error).__name__}: {error}")
    return {"shipped": True, "built_from": ONNX_FILENAME, "rewrites": counts}


def write_int8(folder: Path, calibration: Sequence[np.ndarray], data: str,
               representative_ids: np.ndarray | None = None) -> dict[str, Any]:
    """Writes `model.int8.onnx` from `folder/model.optimized.onnx`, calibrated on
    `calibration` (batches of token ids; `data` says what they are, for the manifest), and
    keeps `representative_ids` beside it as representative_ids.npy when given, so that
    `verify` checks it on the same data.

    Returns:
        Its `onnxruntime_files` entry: {"shipped": True, "built_from", "method", "data"}, or
        {"shipped": False, "reason"} when quantization failed (then nothing is left behind).
    """
    try:
        if representative_ids is not None:
            np.save(folder / REPRESENTATIVE_FILENAME, representative_ids, allow_pickle=False)
        quantize_int8(folder / OPTIMIZED_FILENAME, folder / INT8_FILENAME, calibration)
    except Exception as error:
        return left_out(folder, INT8_FILENAME,
                        f"quantization failed: {type(error).__name__}: {error}")
    return {"shipped": True, "built_from": OPTIMIZED_FILENAME, "method": INT8_METHOD,
            "data": data}


def left_out(folder: Path, filename: str, reason: str) -> dict[str, Any]:
    """Removes an onnxruntime-only file from `folder` (the int8 file with its calibration and
    check data) and returns its `onnxruntime_files` entry: not shipped, and why."""
    (folder / filename).unlink(missing_ok=True)
    if filename == INT8_FILENAME:
        (folder / REPRESENTATIVE_FILENAME).unlink(missing_ok=True)
    return {"shipped": False, "reason": reason}
