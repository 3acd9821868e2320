"""The issue's goals, judged from one run's ratios, and the run as a markdown report."""

from __future__ import annotations

from typing import Any

from benchmarks import time_to_accuracy


def _goal(name: str, target: str, measured: float | None, met: bool | None,
          detail: str) -> dict[str, Any]:
    return {"goal": name, "target": target, "measured": measured, "met": met, "detail": detail}


def judge_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per goal of the issue: the ratio measured in this run and whether it is met
    (`met` is None when the run did not measure it, e.g. int8 accuracy under --quick)."""
    training, inference = results["training"], results["inference"]
    ours_train, ref_train = (max(training[name].values()) for name in ("keras_attn", "reference"))
    best32, best1 = inference["best_batch32"], inference["best_batch1"]
    ref32 = inference["reference_best_batch32"]
    ref_default = inference["reference_default"]["batch32_tokens_per_s"]
    peak_fraction = results["roofline"]["inference_fraction_of_peak"]["ours_best"]
    savedmodel_ms = inference["paths"]["SavedModel serving_default"]["batch1_ms"]
    int8 = results["int8"]
    accuracy = int8.get("accuracy") or {}
    gap = accuracy.get("gap_points")
    int8_ratio = int8["speedup_vs_best_fp32"]
    size_ratio = results["export"]["onnx_size_ratio"]
    return [
        _goal("Training: keras_attn vs keras.io MHA reference (each at its better jit)",
              ">= 1.4x", ours_train / ref_train, ours_train / ref_train >= 1.4,
              f"{ours_train:,.0f} vs {ref_train:,.0f} tokens/s"),
        _goal("Inference b32: our best ORT vs reference's Keras-exported ONNX (its best)",
              ">= 1.5x", best32["tokens_per_s"] / ref32["tokens_per_s"],
              best32["tokens_per_s"] / ref32["tokens_per_s"] >= 1.5,
              f"{best32['tokens_per_s']:,.0f} ({best32['name']}) vs {ref32['tokens_per_s']:,.0f} "
              f"tokens/s ({ref32['name']}); vs the reference at default settings: "
              f"{best32['tokens_per_s'] / ref_default:.2f}x"),
        _goal("Inference b32: our best ORT, fraction of measured matmul peak", ">= 0.75",
              peak_fraction, peak_fraction >= 0.75,
              f"{best32['tokens_per_s']:,.0f} tokens/s x forward FLOPs / peak"),
        _goal("Inference b1: our best ORT latency vs SavedModel", "<= 0.4x",
              best1["batch1_ms"] / savedmodel_ms, best1["batch1_ms"] / savedmodel_ms <= 0.4,
              f"{best1['name']}: {best1['batch1_ms']:.3f} ms vs {savedmodel_ms:.3f} ms"),
        _goal("int8: throughput vs our best fp32 ORT", ">= 1.5x", int8_ratio,
              int8_ratio >= 1.5, f"{int8['best']['tokens_per_s']:,.0f} tokens/s "
              f"({int8['best']['name']}) vs {best32['tokens_per_s']:,.0f}"),
        _goal("int8: demo-task accuracy vs fp32", "within 0.5 points", gap,
              None if gap is None else abs(gap) <= 0.5,
              "not measured (--quick)" if gap is None else
              f"fp32 {accuracy['fp32']:.2f}% vs int8 {accuracy['int8']:.2f}%"),
        _goal("Size: ONNX file vs params x 4 bytes", "<= 1.05x", size_ratio, size_ratio <= 1.05,
              f"{results['export']['onnx_bytes']:,} bytes, {results['export']['params']:,} params"),
        *_dropout_goals(results), *_length_goals(results),
    ]


def _dropout_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Training at the CLI's dropout 0.1, each model at its better jit setting."""
    if "training_dropout" not in results:
        return []
    at_01, at_00 = results["training_dropout"], results["training"]
    ours, ref = (max(at_01[name].values()) for name in ("keras_attn", "reference"))
    ratio_00 = max(at_00["keras_attn"].values()) / max(at_00["reference"].values())
    return [_goal("Training at dropout 0.1: keras_attn vs keras.io reference (each at its "
                  "better jit)", ">= 1.4x", ours / ref, ours / ref >= 1.4,
                  f"{ours:,.0f} vs {ref:,.0f} tokens/s; at dropout 0.0: {ratio_00:.2f}x")]


def _length_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Real lengths: training and prediction by length, train wall time, time to accuracy."""
    if "lengths" not in results:
        return []
    lengths = results["lengths"]
    row = lengths["training"]["256"]
    prediction = lengths["prediction"]
    wall, accuracy = lengths["train_wall"], lengths["time_to_accuracy"]
    goals = [
        _goal("Real lengths, max_len 256: training real tokens/s, by length vs pad to longest",
              ">= 3x", row["speedup"], row["speedup"] >= 3,
              f"{row['by length']:,.0f} vs {row['pad to longest']:,.0f} real tokens/s; real "
              f"share of computed positions {row['real_share_bucketed']:.2f} vs "
              f"{row['real_share_padded']:.2f}; {row['shapes']} batch shapes compiled"),
        _goal("Real lengths: `train_classifier` wall time, max_len 256 vs 64", "<= 1.6x",
              None if wall is None else wall["ratio"], None if wall is None else
              wall["ratio"] <= 1.6, "not measured (--quick)" if wall is None else
              f"{wall['seconds']['256']:.1f} s vs {wall['seconds']['64']:.1f} s"),
    ]
    ratio, met, detail = time_to_accuracy.judge(accuracy)
    goals.append(_goal("Time to val accuracy >= 0.99 (reference task), now vs before, "
                       "median of 3 seeds", "<= 0.5x", ratio, met, detail))
    goals.append(_goal("Prediction over many texts: real tokens/s, by length vs whole file",
                       ">= 2x", prediction["speedup"], prediction["speedup"] >= 2,
                       f"{prediction['by length']:,.0f} vs {prediction['whole file']:,.0f} "
                       f"real tokens/s, {prediction['texts']} texts"))
    return goals


def _met(value: bool | None) -> str:
    return "not measured" if value is None else ("**met**" if value else "**not met**")


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """The whole run as markdown: goals, training, inference, roofline, export, fusion, int8."""
    meta, roof = results["meta"], results["roofline"]
    lines = [
        f"### keras-attn benchmark: {meta['date']}, {meta['machine']}",
        "",
        f"Config `{meta['config_name']}` ("
        + ", ".join(f"{key} {value}" for key, value in meta["config"].items())
        + f"), batch 32 x {meta['max_len']} "
        f"tokens, {'--quick' if meta['quick'] else 'full'} run. All ratios are within this run.",
        "",
        "| goal | target | measured | result | detail |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {g['goal']} | {g['target']} | {_num(g['measured'])} | {_met(g['met'])} | "
              f"{g['detail']} |" for g in results["goals"]]
    training = results["training"]
    lines += ["", "| training (steady-state fit steps) | jit off tokens/s | jit on tokens/s | "
              "best, fraction of peak (3x fwd FLOPs) |", "|---|---|---|---|"]
    labels = {"keras_attn": "keras_attn classifier",
              "reference": "keras.io MultiHeadAttention reference"}
    for name in training:
        lines.append(f"| {labels[name]} | {training[name]['jit off']:,.0f} | "
                     f"{training[name]['jit on']:,.0f} | "
                     f"{roof['training_fraction_of_peak'][name]:.1%} |")
    for name, speeds in results.get("training_dropout", {}).items():
        lines.append(f"| {labels[name]}, dropout 0.1 | {speeds['jit off']:,.0f} | "
                     f"{speeds['jit on']:,.0f} | - |")
    inference = results["inference"]
    lines += ["", "| inference path | batch 1 ms | batch 32 tokens/s | b32 fraction of peak | "
              "parity vs Keras (max abs) |", "|---|---|---|---|---|"]
    for name, path in inference["paths"].items():
        parity = path.get("parity_max_abs")
        lines.append(f"| {name} | {path['batch1_ms']:.3f} | {path['batch32_tokens_per_s']:,.0f} "
                     f"| {path['fraction_of_peak']:.1%} | "
                     f"{'-' if parity is None else f'{parity:.1e}'} |")
    lines += ["", _shipped_note(results)]
    lines += ["", f"Best fp32 ORT at batch 32: **{inference['best_batch32']['name']}**; at batch "
              f"1: **{inference['best_batch1']['name']}**. Matmul peak (NumPy fp32 2048^3, same "
              f"run): {roof['peak_gflops']:.1f} GFLOP/s; forward FLOPs/token: "
              f"{roof['forward_flops_per_token']:,.0f}."]
    lines += ["", "Session creation (best of 3): " + ", ".join(
        f"{name.removeprefix('ORT ')} {1e3 * seconds:.0f} ms"
        for name, seconds in inference["session_load_seconds"].items()) + "."]
    export = results["export"]
    lines += ["", "| export | seconds | ONNX bytes | params x 4 | ratio |", "|---|---|---|---|---|",
              f"| export.export_model (SavedModel + 3 ONNX files + parity battery): model.onnx | "
              f"{export['seconds']:.1f} | {export['onnx_bytes']:,} | {export['params'] * 4:,} | "
              f"{export['onnx_size_ratio']:.3f} |"]
    lines += [f"| same export: {name} | | {entry['bytes']:,} | | "
              f"{entry['bytes'] / (export['params'] * 4):.3f} |"
              for name, entry in export["onnxruntime_files"].items() if entry["shipped"]]
    lines += [f"| reference model.export(format=\"onnx\") | {export['reference_seconds']:.1f} | "
              f"{export['reference_onnx_bytes']:,} | {export['reference_params'] * 4:,} | "
              f"{export['reference_onnx_bytes'] / (export['reference_params'] * 4):.3f} |"]
    lines += ["", "| graph | rewrites applied | ops as written | ops after ORT load-time "
              "optimization |", "|---|---|---|---|"]
    for name, graph in results["fusion"].items():
        applied = ", ".join(f"{k} x{v}" for k, v in graph["rewrites"].items()) or "-"
        lines.append(f"| {name} | {applied} | {_ops(graph['ops_before'])} | "
                     f"{_ops(graph['ops_after'])} |")
    accuracy = results["int8"].get("accuracy")
    if accuracy:
        lines += ["", f"int8 accuracy ({accuracy['setup']}): Keras {accuracy['keras']:.2f}%, "
                  + ", ".join(f"{k} {v:.2f}%" for k, v in accuracy["scores"].items())
                  + f". That export's own int8 check: {_int8_check(accuracy['export_int8'])}."]
    if "lengths" in results:
        lines += ["", *lengths_markdown(results["lengths"])]
    return "\n".join(lines)


def lengths_markdown(lengths: dict[str, Any]) -> list[str]:
    """The real-lengths section: training and prediction by length against pad to longest."""
    dist = lengths["lengths"]
    lines = [f"Real lengths: {lengths['texts']} texts ({lengths['corpus']}), tokens per text "
             + ", ".join(f"{k} {v:.0f}" for k, v in dist.items())
             + f"; the CLI's model ({lengths['model']}), batch 32.", "",
             "| training, real tokens/s | pad to longest | by length | speedup | real share "
             "(padded / by length) | shapes |", "|---|---|---|---|---|---|"]
    for max_len, row in lengths["training"].items():
        lines.append(f"| max_len {max_len} (longest text {row['width']}) | "
                     f"{row['pad to longest']:,.0f} | {row['by length']:,.0f} | "
                     f"{row['speedup']:.2f}x | {row['real_share_padded']:.2f} / "
                     f"{row['real_share_bucketed']:.2f} | {row['shapes']} |")
    prediction = lengths["prediction"]
    lines += ["", f"Prediction (exported model, ORT, 1 thread), real tokens/s: whole file "
              f"{prediction['whole file']:,.0f}, by length {prediction['by length']:,.0f} "
              f"({prediction['speedup']:.2f}x)."]
    return lines


def _shipped_note(results: dict[str, Any]) -> str:
    """Which timed graphs are the files the export ships, and what became of each."""
    files = results["export"]["onnxruntime_files"]
    optimized, int8 = files["model.optimized.onnx"], files["model.int8.onnx"]
    note = ("Shipped files: \"portable\" is model.onnx, \"optimized\" is model.optimized.onnx "
            f"({_rewrites(optimized)}), timed as the export wrote them; the other graphs are "
            "rewritten by the benchmark. ")
    if results["int8"].get("shipped_int8_timed"):
        return note + f"\"int8 optimized\" is the shipped model.int8.onnx ({_int8_check(int8)})."
    return note + ("\"int8 optimized\" is quantized by the benchmark the way the export does: "
                   f"this export did not ship model.int8.onnx ({_int8_check(int8)}).")


def _rewrites(entry: dict[str, Any]) -> str:
    if not entry["shipped"]:
        return f"not shipped: {entry['reason']}"
    return ", ".join(f"{stage} x{count}" for stage, count in entry["rewrites"].items())


def _int8_check(entry: dict[str, Any]) -> str:
    if not entry["shipped"]:
        return f"left out: {entry['reason']}"
    return (f"argmax agreement with Keras {entry['agreement']:.2%} on "
            f"{entry.get('data', 'the parity battery')}, bound 99%; a row's logits moved by "
            f"{entry.get('row_dependence', float('nan')):.3g} with its batch")


def _ops(counts: dict[str, int]) -> str:
    return f"{sum(counts.values())}: " + ", ".join(f"{op} {n}" for op, n in counts.items())
