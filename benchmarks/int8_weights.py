"""int8 or uint8 weights in model.int8.onnx: agreement with Keras and speed, on this CPU.

onnxruntime multiplies uint8 activations by int8 weights (U8S8) with VPMADDUBSW on x86 CPUs
without VNNI, which adds pairs of products into a saturating int16; with VNNI, or with uint8
weights (U8U8), the sums are exact. This quantizes one version folder's
`model.optimized.onnx` both ways (`export.formats.optimize.quantize_int8`, calibrated on its
`representative_ids.npy`), and runs each under onnxruntime's default session settings and
under `session.x64quantprecision` = 1 (`export.runtime.predictor.EXACT_INT8_MATMUL`), against
Keras on the representative rows. Speed is relative to the fp32 optimized graph, timed in the
same process (1 intra-op thread, best of interleaved rounds).

    python -m benchmarks.int8_weights [FOLDER]   # default: the committed 0.1 classifier fixture

FOLDER must hold model.keras, model.optimized.onnx and representative_ids.npy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from unittest import mock

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/version_folders/languages/1"


def measure(folder: Path, rounds: int = 7, calls: int = 50) -> list[dict]:
    import numpy as np
    import onnxruntime as ort
    import onnxruntime.quantization as quantization

    import keras_attn
    from benchmarks.timing import interleaved_best
    from export.formats import optimize
    from export.runtime.predictor import EXACT_INT8_MATMUL

    ids = np.load(folder / "representative_ids.npy").astype(np.int32)
    reference = keras_attn.load_model(folder / "model.keras").predict(ids, verbose=0)
    original = quantization.quantize_dynamic

    def quantized(weight_type, out: str) -> str:
        def with_weights(source, target, **options):
            return original(source, target, **{**options, "weight_type": weight_type})

        with mock.patch.object(quantization, "quantize_dynamic", with_weights):
            optimize.quantize_int8(folder / "model.optimized.onnx", out,
                                   [ids[start:start + 32] for start in range(0, len(ids), 32)])
        return out

    def session(path, exact: bool):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        if exact:
            options.add_session_config_entry(*EXACT_INT8_MATMUL)
        return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])

    with tempfile.TemporaryDirectory(prefix="keras-attn-int8-weights-") as tmp:
        files = {"int8 weights (U8S8)": quantized(quantization.QuantType.QInt8, f"{tmp}/s8.onnx"),
                 "uint8 weights (U8U8)": quantized(quantization.QuantType.QUInt8,
                                                   f"{tmp}/u8.onnx")}
        sessions = {"fp32 optimized": session(folder / "model.optimized.onnx", False)}
        for name, path in files.items():
            sessions[f"{name}, default session"] = session(path, False)
            sessions[f"{name}, exact session"] = session(path, True)
        answers = {name: s.run(None, {s.get_inputs()[0].name: ids})[0]
                   for name, s in sessions.items()}
        rows = []
        for batch in (1, 32):
            feed = ids[:batch]
            runs = {name: (lambda s=s, feed=feed: s.run(None, {s.get_inputs()[0].name: feed}))
                    for name, s in sessions.items()}
            best = interleaved_best(runs, rounds=rounds, calls=calls)
            rows += [{"file": name, "batch": batch,
                      "agreement": float((logits.argmax(-1) == reference.argmax(-1)).mean()),
                      "max_abs_diff": float(np.abs(logits - reference).max()),
                      "time_vs_fp32": best[name] / best["fp32 optimized"]}
                     for name, logits in answers.items()]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=FIXTURE)
    args = parser.parse_args()
    rows = measure(args.folder)
    print(f"{'file':<40} {'batch':>5} {'agreement':>9} {'max abs diff':>12} {'time vs fp32':>12}")
    for row in rows:
        print(f"{row['file']:<40} {row['batch']:>5} {row['agreement']:>9.2%} "
              f"{row['max_abs_diff']:>12.4f} {row['time_vs_fp32']:>11.2f}x")


if __name__ == "__main__":
    main()
