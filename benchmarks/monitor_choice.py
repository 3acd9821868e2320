"""Which epoch should a run keep: the lowest val_loss (Keras's default) or the highest
val_accuracy? (issue 21: `keras-attn train --monitor`)

Each corpus is split, stratified, into train / validation / test (60 / 20 / 20, by seed); a run
with `keras-attn train`'s default settings trains on train, picks its epoch on validation with
each monitor, and the kept model is scored on test, which neither monitor saw. (Scored on
validation, val_accuracy would win by construction: it chose the epoch there.) Each monitor
is its own run from the same seed and split, so early stopping acts on it as it would for a
user.

    python -m benchmarks.monitor_choice [--seeds 0 1 2] [--corpora PATH ...]

Default corpora: the committed samples of Debian's fortune packages (tests/fixtures), real
text written by people. A figure, not a speed: nothing is timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
CORPORA = (FIXTURES / "fortune_languages.jsonl", FIXTURES / "fortune_topics.jsonl")


def measure(corpora=CORPORA, seeds=(0, 1, 2), base=None) -> list[dict]:
    """One row per corpus, seed and monitor. `base`: the TrainSettings to start from (default
    `keras-attn train`'s)."""
    import numpy as np

    from keras_attn.config import MONITORS, TrainSettings
    from keras_attn.data.records import encode_texts, load_texts, split_train_validation
    from keras_attn.training.classifier import train_classifier
    from keras_attn.training.run_folder import kept_epoch_summary

    rows = []
    for corpus in corpora:
        data = load_texts(corpus)
        for seed in seeds:
            rest, test = split_train_validation(data, 0.2, seed=seed)
            train, validation = split_train_validation(rest, 0.25, seed=seed)
            for monitor in MONITORS:
                settings = dataclasses.replace(base or TrainSettings(), seed=seed,
                                               monitor=monitor)
                with tempfile.TemporaryDirectory(prefix="keras-attn-monitor-") as run_dir:
                    run = train_classifier(train, validation, settings, Path(run_dir) / "run",
                                           verbose=0)
                    ids = encode_texts(run.tokenizer, test.texts, settings.max_len)
                    predicted = np.argmax(run.model.predict(ids, verbose=0), axis=-1)
                    row = {"corpus": corpus.stem, "seed": seed, "monitor": monitor,
                           "test_accuracy": float(np.mean(predicted == test.labels)),
                           "validation_accuracy": run.validation_accuracy,
                           "epochs": len(run.history["val_loss"]),
                           "kept": kept_epoch_summary(run.history, monitor)}
                rows.append(row)
                print(f"{row['corpus']:<18} seed {seed} {monitor:<12} test "
                      f"{row['test_accuracy']:.4f}  validation {row['validation_accuracy']:.4f}"
                      f"  {row['epochs']} epochs; {row['kept']}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--corpora", type=Path, nargs="+", default=list(CORPORA))
    args = parser.parse_args()
    measure(args.corpora, args.seeds)


if __name__ == "__main__":
    main()
