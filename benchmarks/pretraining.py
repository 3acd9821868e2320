"""Does pre-training pay off for a classifier with few labels? (README "Pre-training a classifier")

The corpus: English topic classification (`keras_attn.data.corpora.fortune_topics`, 8 topics of
Debian's `fortunes` package), 120 texts per topic in `labelled.jsonl`; `keras-attn train
--validation-split 0.75` leaves 30 labelled texts per topic to train on and 90 to validate on.
The unlabelled texts are every other English fortune cookie (`corpora.LANGUAGES["en"]`'s
files): every text of labelled.jsonl is left out, so the language model never reads a
validation text, whatever the split's seed.

The runs, each a `keras-attn` command run in this process (the commands are printed):

1. `train-lm` on the unlabelled texts, once;
2. per seed, `train` from scratch, and `train --init-from` the language model with causal
   and with bidirectional attention; `train` also fits its TF-IDF baseline on the same split.

Prints each run's validation accuracy and the median over the seeds, and writes them to
OUT/results.json.

Usage: python benchmarks/pretraining.py --out /tmp/pretraining [--seeds 0 1 2]
           [--learning-rate 5e-4] [--lm /tmp/pretraining/lm]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from keras_attn.cli.main import main as keras_attn
from keras_attn.data.corpora import (
    FORTUNES_DIR,
    LANGUAGES,
    _files,
    fortune_topics,
    read_fortunes,
    write_jsonl,
)
from keras_attn.training.run_folder import RUN_FILE

PER_TOPIC, VALIDATION_SPLIT = 120, "0.75"  # 30 labelled texts per topic to train on, 90 held out
LM_FLAGS = ["--vocab-size", "4000"]  # the other model flags: train's defaults
VARIANTS = {"scratch": [], "causal": ["--init-attention", "causal"],
            "bidirectional": ["--init-attention", "bidirectional"]}


def write_corpus(folder: Path) -> tuple[Path, Path]:
    """labelled.jsonl and unlabelled.jsonl (no text of the first in the second)."""
    labelled = fortune_topics(max_per_class=PER_TOPIC, seed=0)
    write_jsonl(labelled, folder / "labelled.jsonl")
    held_out = set(labelled.texts)
    english = [text for path in _files(FORTUNES_DIR, LANGUAGES["en"])
               for text in read_fortunes(path)]
    with open(folder / "unlabelled.jsonl", "w", encoding="utf-8", newline="\n") as file:
        for text in dict.fromkeys(english):  # each text once, in file order
            if text not in held_out:
                file.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    return folder / "labelled.jsonl", folder / "unlabelled.jsonl"


def run(command: list[str]) -> float:
    """Runs one keras-attn command; returns its seconds."""
    print("$ keras-attn " + " ".join(command), flush=True)
    start = time.perf_counter()
    if keras_attn(command) != 0:
        raise SystemExit(f"failed: keras-attn {' '.join(command)}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--learning-rate", help="train's --learning-rate; default train's")
    parser.add_argument("--lm", type=Path, help="a language model trained by an earlier run "
                        "of this script (OUT/lm) to use instead of training one")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    labelled, unlabelled = write_corpus(args.out)
    seconds = {}
    lm = args.lm or args.out / "lm"
    if not args.lm:
        seconds["train-lm"] = run(["train-lm", "--data", str(unlabelled), "--out", str(lm),
                                   *LM_FLAGS])
    lm_results = json.loads((lm / RUN_FILE).read_text())["results"]
    learning_rate = ["--learning-rate", args.learning_rate] if args.learning_rate else []
    accuracy: dict[str, list[float]] = {name: [] for name in [*VARIANTS, "baseline"]}
    for seed in args.seeds:
        for name, flags in VARIANTS.items():
            folder = args.out / f"{name}_seed{seed}"
            init = ["--init-from", str(lm)] if flags else []
            seconds[folder.name] = run(["train", "--data", str(labelled), "--out", str(folder),
                                        "--validation-split", VALIDATION_SPLIT, "--seed",
                                        str(seed), *learning_rate, *init, *flags])
            results = json.loads((folder / RUN_FILE).read_text())["results"]
            accuracy[name].append(results["validation"]["accuracy"])
        accuracy["baseline"].append(results["baseline"]["accuracy"])
    medians = {name: statistics.median(values) for name, values in accuracy.items()}
    summary = {"seeds": args.seeds, "learning_rate": args.learning_rate, "accuracy": accuracy,
               "median": medians, "language_model": lm_results, "seconds": seconds}
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nlanguage model: validation perplexity {lm_results['validation_perplexity']:.1f} "
          f"(unigram {lm_results['unigram_perplexity']:.1f})")
    print(f"{'validation accuracy':<22}" + "".join(f"seed {s:<5}" for s in args.seeds)
          + "median")
    for name, values in accuracy.items():
        print(f"{name:<22}" + "".join(f"{v:<10.4f}" for v in values) + f"{medians[name]:.4f}")


if __name__ == "__main__":
    main()
