"""Peak memory of the training data pipeline as the data grows: in memory against streamed.

A .jsonl file of N texts is made by repeating a real corpus (`keras_attn.data.corpora.
fortune_languages`: 12 languages; under --quick the fixture's sample) until N lines. For each N
and pipeline, a child process runs what `keras-attn train` does with its data before and
during one epoch, without the model (whose memory does not grow with the data), and reports
its peak resident set size (`VmHWM` in Linux's `/proc/self/status`; not `getrusage`'s
`ru_maxrss`, which Linux carries over from the parent through fork and exec, so that every
child of a 4.5 GB benchmark process reported 4.5 GB):

- in memory (`keras-attn train`): `load_texts`, `split_train_validation`, the tokenizer
  trained on the training texts, `encode_texts` of both splits, one epoch of
  `LengthBatches.dataset()`;
- streamed (`keras-attn train --stream`): `scan_stream`, the tokenizer trained on
  `sample_texts`, `TextStream`'s counting passes for both splits, one epoch of its tf.data
  pipeline.

Both iterate every training batch once, so the seconds compare too. A full run measures 10,000
and 1,000,000 texts; --quick only runs the streamed pipeline in this process on 1,000 texts
(a smoke run: no peak RSS of its own).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"full": (10_000, 1_000_000), "quick": (1_000,)}
PIPELINES = ("in memory", "streamed")
MAX_LEN, BATCH, VOCAB = 128, 32, 8000


def write_corpus(path: Path, texts: int, quick: bool) -> Path:
    """`texts` lines of {"text", "label"} JSON, the corpus repeated in order."""
    from benchmarks.lengths import real_corpus

    corpus = real_corpus(quick)
    lines = [json.dumps({"text": text, "label": corpus.class_names[label]}, ensure_ascii=False)
             for text, label in zip(corpus.texts, corpus.labels, strict=True)]
    with open(path, "w", encoding="utf-8") as file:
        for line in itertools.islice(itertools.cycle(lines), texts):
            file.write(line + "\n")
    return path


def run_pipeline(pipeline: str, path: Path) -> dict:
    """One epoch of `pipeline`'s batches over the file; texts, batches and seconds."""
    from export.artifact.tokenizer import train_tokenizer

    start = time.perf_counter()
    if pipeline == "in memory":
        from keras_attn.data.buckets import LengthBatches
        from keras_attn.data.records import encode_texts, load_texts, split_train_validation

        train, validation = split_train_validation(load_texts(path), 0.2, seed=0)
        tokenizer = train_tokenizer(train.texts, vocab_size=VOCAB)
        encode_texts(tokenizer, validation.texts, MAX_LEN)
        batches = LengthBatches(encode_texts(tokenizer, train.texts, MAX_LEN), train.labels,
                                BATCH).dataset()  # what train_classifier gives `fit`
        texts = len(train)
    else:
        from keras_attn.data.streaming import TextStream, sample_texts, scan_stream

        data = scan_stream(path, validation_fraction=0.2, seed=0)
        tokenizer = train_tokenizer(sample_texts(data), vocab_size=VOCAB)
        TextStream(data, "validation", tokenizer, MAX_LEN, BATCH, shuffle=False)
        batches = TextStream(data, "train", tokenizer, MAX_LEN, BATCH).dataset()
        texts = data.size("train")
    rows = count = 0
    for _, labels in batches:
        rows, count = rows + len(labels), count + 1
    if rows != texts:
        raise RuntimeError(f"One epoch must hold every training text once. Received: {rows} "
                           f"rows for {texts} texts")
    return {"texts": texts, "batches": count, "seconds": time.perf_counter() - start}


def proc_status_mib(field: str, pid: int | str = "self") -> float:
    """A memory field of Linux's `/proc/<pid>/status` ("VmRSS": resident now, "VmHWM": its peak
    since the process's last exec), in MiB.

    Raises:
        RuntimeError: the file has no such field.
    """
    for line in Path(f"/proc/{pid}/status").read_text().split("\n"):
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _child(pipeline: str, path: str) -> None:
    result = run_pipeline(pipeline, Path(path))
    result["peak_rss_mb"] = proc_status_mib("VmHWM")
    print(json.dumps(result))


def measure(quick: bool) -> dict:
    """{"<texts>": {"<pipeline>": {"peak_rss_mb", "seconds", "texts", "batches"}}}, and per
    pipeline the peak at the largest size over the smallest ("growth")."""
    result: dict = {"sizes": {}, "quick": quick}
    with tempfile.TemporaryDirectory(prefix="keras_attn_stream_") as folder:
        for size in SIZES["quick" if quick else "full"]:
            path = write_corpus(Path(folder) / f"{size}.jsonl", size, quick)
            row = result["sizes"][str(size)] = {"file_mb": path.stat().st_size / 2 ** 20}
            if quick:
                row["streamed"] = run_pipeline("streamed", path)
                continue
            for pipeline in PIPELINES:
                completed = subprocess.run(
                    [sys.executable, "-m", "benchmarks.streaming_memory", pipeline, str(path)],
                    cwd=ROOT, capture_output=True, text=True, check=True)
                row[pipeline] = json.loads(completed.stdout.strip().splitlines()[-1])
    if not quick:
        small, large = (result["sizes"][str(size)] for size in SIZES["full"])
        result["growth"] = {name: large[name]["peak_rss_mb"] / small[name]["peak_rss_mb"]
                            for name in PIPELINES}
    return result


def markdown(result: dict) -> str:
    """The section of the report: peak RSS and seconds per size and pipeline."""
    lines = ["## Training data beyond memory", "",
             "Peak RSS of the data pipeline (one epoch of batches, no model) in a child process "
             "per run; texts repeated from the fortune corpora, max_len 128, batch 32.", "",
             "| texts (file MB) | pipeline | peak RSS MB | seconds | training texts | batches |",
             "|---|---|---:|---:|---:|---:|"]
    for size, row in result["sizes"].items():
        for pipeline in PIPELINES:
            if pipeline in row:
                entry = row[pipeline]
                rss = entry.get("peak_rss_mb")
                lines.append(f"| {int(size):,} ({row['file_mb']:.1f}) | {pipeline} | "
                             f"{'-' if rss is None else f'{rss:,.0f}'} | {entry['seconds']:.1f} "
                             f"| {entry['texts']:,} | {entry['batches']:,} |")
    if "growth" in result:
        lines += ["", "Peak RSS at the largest size over the smallest: " + ", ".join(
            f"{name} {ratio:.2f}x" for name, ratio in result["growth"].items()) + "."]
    else:
        lines += ["", "--quick: the streamed pipeline on 1,000 texts in this process (a smoke "
                  "run; no peak RSS)."]
    return "\n".join(lines)


if __name__ == "__main__":
    _child(*sys.argv[1:3])
