"""The run folder: what every training run (`train`, `train --stream`, `train-lm`) writes, and
how a rerun of the same command resumes it.

A run folder holds `run.json` (the run's identity: settings and data; later what it measured),
`model.keras` (the best model by validation loss), `tokenizer.json`, `config.json` (written
last: its presence marks the run finished), `history.csv`, TensorBoard `logs/`,
`representative_ids.npy` (held-out token ids for the export's int8 file), the figures
`training_curves.png` and `confusion_matrix.png`, and while training `backup/`, from which an
interrupted run resumes (Keras `BackupAndRestore`).

The model and tokenizer files are named as in an export version folder
(`export.artifact.manifest`). Keras is imported only by `run_callbacks`, so that the CLI can
recognize a run folder without it.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from export.artifact.manifest import KERAS_FILENAME as MODEL_FILE
from export.artifact.manifest import REPRESENTATIVE_FILENAME as REPRESENTATIVE_FILE
from export.artifact.manifest import TOKENIZER_FILENAME as TOKENIZER_FILE
from export.artifact.tokenizer import Tokenizer, train_tokenizer, vocab_size_note
from export.artifact.versions import check_folder_path
from keras_attn.config import TrainSettings

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "training_curves.png"
CONFUSION_FILE = "confusion_matrix.png"
BACKUP_DIR = "backup"
LOGS_DIR = "logs"
# Where run.json keeps what a finished run measured (not part of the run's identity).
RESULTS_KEY = "results"
# What a run writes, and so all that --overwrite removes: other files in the folder stay.
RUN_OUTPUTS = (RUN_FILE, MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE, HISTORY_FILE, CURVES_FILE,
               CONFUSION_FILE, BACKUP_DIR, LOGS_DIR, REPRESENTATIVE_FILE)



class RunFolderError(ValueError):
    """The output folder holds something this run must not overwrite."""


def trained_tokenizer(texts: Sequence[str], settings: TrainSettings,
                      log: Callable[[str], None]) -> Tokenizer:
    """`export.artifact.tokenizer.train_tokenizer` with the run's tokenizer settings, logging
    why the vocabulary is not `settings.vocab_size` when it is not (`vocab_size_note`)."""
    tokenizer = train_tokenizer(list(texts), model=settings.tokenizer,
                                vocab_size=settings.vocab_size)
    note = vocab_size_note(tokenizer, settings.vocab_size, settings.tokenizer)
    if note:
        log(f"tokenizer: {note}")
    return tokenizer


def prepare_run_folder(run_dir: Path, run_record: dict, overwrite: bool) -> bool:
    """Claims `run_dir` for a run; returns True when it resumes the same interrupted run.

    With `overwrite`, an earlier run's outputs (`RUN_OUTPUTS`) are removed; any other file in
    the folder is left alone.

    Raises:
        RunFolderError: the folder holds another run (unless `overwrite`), or files that are
            not a keras-attn run at all (never deleted, even with `overwrite`).
        NotADirectoryError: `run_dir`, or a path above it, is a file.
    """
    check_folder_path(run_dir, "--out")
    record_path = run_dir / RUN_FILE
    if record_path.exists():
        same = records_run(run_dir, run_record)
        if same and not (run_dir / CONFIG_FILE).exists():
            return True  # the same run, interrupted: resume it
        if same and not overwrite:
            raise RunFolderError(
                f"{run_dir} already holds this run, finished. Pass --overwrite to train it "
                f"again, or choose another --out. Received: --out {run_dir}"
            )
        if not overwrite:
            raise RunFolderError(
                f"{run_dir} already holds a different keras-attn run (other data or settings). "
                "Choose another --out, or pass --overwrite to replace it. "
                f"Received: --out {run_dir}"
            )
        _remove_run_outputs(run_dir)
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise RunFolderError(
            f"{run_dir} is not empty and is not a keras-attn run folder; nothing is deleted. "
            f"Choose an empty or new folder. Received: --out {run_dir}"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(run_record, indent=2) + "\n", encoding="utf-8")
    return False


# TrainSettings fields added since runs were first recorded, with the value every run recorded
# before them trained with (a classifier's readout was the mean): such a run still resumes.
SETTINGS_THAT_RUNS_BEFORE_THEM_HAD = {"pooling": "mean", "readout_token": None,
                                      "monitor": "val_loss"}


def records_run(run_dir: Path, run_record: dict) -> bool:
    """Whether `run_dir/run.json` records this run: the same settings and data. What a
    finished run measured ("results") is not part of its identity."""
    stored = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    stored.pop(RESULTS_KEY, None)
    if isinstance(stored.get("settings"), dict):
        stored["settings"] = {**SETTINGS_THAT_RUNS_BEFORE_THEM_HAD, **stored["settings"]}
    return stored == run_record


def record_results(run_dir: str | Path, results: dict) -> None:
    """Adds what a finished run measured (e.g. validation reports of the model and of its
    baseline) to its `run.json`, under "results"; resuming ignores them."""
    record_path = Path(run_dir) / RUN_FILE
    record = json.loads(record_path.read_text(encoding="utf-8"))
    record[RESULTS_KEY] = results
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def read_results(run_dir: str | Path) -> dict | None:
    """The results `record_results` stored in a run folder, or None."""
    record_path = Path(run_dir) / RUN_FILE
    if not record_path.is_file():
        return None
    return json.loads(record_path.read_text(encoding="utf-8")).get(RESULTS_KEY)


def _remove_run_outputs(run_dir: Path) -> None:
    for name in RUN_OUTPUTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def resumed_epoch(run_dir: Path) -> int:
    """The epochs an interrupted run had finished, from its `backup/` (0 without one)."""
    metadata = run_dir / BACKUP_DIR / "training_metadata.json"
    if not metadata.exists():
        return 0
    return int(json.loads(metadata.read_text(encoding="utf-8"))["epoch"])


def kept_epoch_summary(history: dict[str, list[float]], monitor: str) -> str:
    """Which epoch the run kept, by `monitor`, and what the last epoch and the best of the other
    figure scored, in one line, e.g. "kept epoch 2 of 8, the lowest val_loss (0.9321; its
    val_accuracy 0.3441); the last: val_loss 1.2034, val_accuracy 0.5206; the highest
    val_accuracy: 0.5529, at epoch 7". Epochs count from 1, as Keras prints them.

    Args:
        history: `read_history` of a finished run (lists per log name, one value per epoch).
        monitor: the `TrainSettings.monitor` it ran with.
    """
    watched = history.get(monitor, [])
    if not watched:
        return f"no {monitor} was logged"
    highest = monitor.endswith("accuracy")
    kept = _best_epoch(watched, highest)
    other = "val_loss" if highest else "val_accuracy"
    figures = [name for name in ("val_loss", "val_accuracy") if history.get(name)]

    def at(epoch: int) -> str:
        return ", ".join(f"{name} {history[name][epoch]:.4f}" for name in figures)

    line = (f"kept epoch {kept + 1} of {len(watched)}, the {'highest' if highest else 'lowest'} "
            f"{monitor} ({at(kept)}); the last: {at(len(watched) - 1)}")
    if history.get(other):
        values = history[other]
        best_other = _best_epoch(values, other != "val_loss")
        line += (f"; the {'lowest' if other == 'val_loss' else 'highest'} {other}: "
                 f"{values[best_other]:.4f}, at epoch {best_other + 1}")
    return line


def _best_epoch(values: list[float], highest: bool) -> int:
    """The index of the first best value, as Keras's EarlyStopping and ModelCheckpoint keep
    the first of equal figures."""
    best = max(values) if highest else min(values)
    return values.index(best)


def read_history(run_dir: Path) -> dict[str, list[float]]:
    """The per-epoch metrics of a run, across resumes, from its `history.csv`."""
    with open(run_dir / HISTORY_FILE, encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    return {name: [float(row[name]) for row in rows] for name in (rows[0] if rows else {})}


def run_callbacks(run_dir: Path, patience: int, resumed_from: int, extra=None,
                  monitor: str = "val_loss") -> list:
    """What every run folder's `fit` gets: resume after a kill (`backup/`), early stopping on
    `monitor` (a `keras_attn.config.MONITORS` name), the best model by it kept (`model.keras`;
    a resumed run's checkpoint replaces only a figure better than the best so far),
    `history.csv` and TensorBoard `logs/`; then the `extra` Keras callbacks."""
    import keras

    best = max if monitor.endswith("accuracy") else min
    best_so_far = best(read_history(run_dir).get(monitor, []), default=None) \
        if resumed_from else None
    mode = "max" if best is max else "min"
    return [
        keras.callbacks.BackupAndRestore(str(run_dir / BACKUP_DIR)),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience,
                                      restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(run_dir / MODEL_FILE), monitor=monitor, mode=mode,
                                        save_best_only=True,
                                        initial_value_threshold=best_so_far),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=True),
        keras.callbacks.TensorBoard(str(run_dir / LOGS_DIR)),
        *(extra or []),
    ]
