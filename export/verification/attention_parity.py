"""Parity of `attention.onnx` with Keras: every block's attention weights on the battery.

Each batch of the parity battery (`export.verification.cases.parity_cases`: full-length
batches at every batch size and length, and ragged batches padded with 0) runs through the
Keras model's own blocks with `return_attention_scores`
(`keras_attn.models.attention_maps.attention_maps`) and through `attention.onnx` in
onnxruntime at the basic and the full optimization level; every weight of every block must
agree within the export's fp32 tolerance. `check_attention` runs this at export (a file that
fails is left out, with a RuntimeWarning and the reason in the manifest, and the export goes
on: the viewer is not the serving contract), `verify_attention` in `verify`.

TensorFlow and keras_attn are imported inside the functions (through the model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.artifact.manifest import ATTENTION_FILENAME
from export.runtime.attention import AttentionMaps
from export.verification.cases import SEED, parity_cases
from export.verification.runtimes import ORT_LEVELS


def check_attention_parity(model: Any, path: str | Path, tolerance: float,
                           seed: int = SEED) -> dict:
    """The largest absolute difference between Keras's attention weights and attention.onnx's,
    per onnxruntime optimization level, over the parity battery.

    Returns:
        {"keras vs onnxruntime (basic)": max abs diff, "... (all)": ..., "worst_case": the
        battery case of the largest, "cases": n, "tolerance", "ok"}.
    """
    from keras_attn.models.attention_maps import attention_maps

    sessions = {f"keras vs onnxruntime ({level})": AttentionMaps(path, level)
                for level in ORT_LEVELS}
    first = next(iter(sessions.values()))
    cases = parity_cases(first.max_len, first.vocab_size, seed)
    worst, worst_case = dict.fromkeys(sessions, 0.0), "none"
    for case in cases:
        reference = attention_maps(model, case.token_ids)
        for name, session in sessions.items():
            candidate = session.maps(case.token_ids)
            if [block.shape for block in candidate] != [block.shape for block in reference]:
                diff = float("inf")
            else:
                diff = max(float(np.max(np.abs(np.asarray(got, np.float64) - want)))
                           for got, want in zip(candidate, reference, strict=True))
            if not diff <= worst[name]:  # a NaN is worse than anything
                worst[name], worst_case = diff, case.name
    return {**worst, "worst_case": worst_case, "cases": len(cases), "tolerance": tolerance,
            "ok": all(value <= tolerance for value in worst.values())}


def attention_summary(report: dict) -> str:
    """The check in one line, for export and verify output."""
    diffs = ", ".join(f"{name.removeprefix('keras vs ')} {value:.2e}"
                      for name, value in report.items() if name.startswith("keras vs "))
    return (f"{ATTENTION_FILENAME}: every block's attention weights on {report['cases']} "
            f"battery cases vs Keras: {diffs} (tolerance {report['tolerance']:.0e}, worst "
            f"{report['worst_case']}); {'pass' if report['ok'] else 'FAIL'}")


def check_attention(model: Any, folder: Path, tolerance: float, entry: dict) -> dict:
    """Checks the attention.onnx an export's staging folder holds and settles whether it ships.

    Args:
        model: the float32 Keras model.
        folder: the staging folder.
        tolerance: the export's tolerance.
        entry: `export.formats.attention_onnx.write_attention`'s answer.

    Returns:
        The manifest's "attention" entry: `entry` with "parity" (this check's report), or
        {"shipped": False, "reason"} when the file failed it (then it is removed).
    """
    if not entry["shipped"]:
        return entry
    path = Path(folder) / ATTENTION_FILENAME
    try:
        report = check_attention_parity(model, path, tolerance)
    except Exception as error:  # onnxruntime raises many types for a file it cannot run
        path.unlink(missing_ok=True)
        return {"shipped": False,
                "reason": f"onnxruntime cannot run it: {type(error).__name__}: {error}"}
    if not report["ok"]:
        path.unlink(missing_ok=True)
        return {"shipped": False, "reason": f"failed its parity check: "
                                            f"{attention_summary(report)}"}
    return {**entry, "parity": report}


def verify_attention(model: Any, version_dir: Path, tolerance: float) -> dict | None:
    """`check_attention_parity` on an export's attention.onnx; None when it has none (an
    export made before the file existed, or whose file failed at export)."""
    path = Path(version_dir) / ATTENTION_FILENAME
    return check_attention_parity(model, path, tolerance) if path.is_file() else None
