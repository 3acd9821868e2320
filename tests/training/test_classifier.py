"""train_classifier: run folders that are never clobbered, and resumes that keep the best model."""

import dataclasses
import json

import keras
import numpy as np
import pytest
from interrupted_runs import InterruptAfterEpoch, SimulatedKillError

from keras_attn.config import TrainSettings
from keras_attn.data.records import TextDataset, split_train_validation
from keras_attn.data.reference_task import make_reference_task
from keras_attn.models.builders import config_from_model, load_model
from keras_attn.training.classifier import train_classifier
from keras_attn.training.run_folder import (
    CONFIG_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    RunFolderError,
    kept_epoch_summary,
    prepare_run_folder,
    record_results,
)

SETTINGS = TrainSettings(max_len=24, d_model=16, num_heads=2, ff_dim=32, num_layers=1,
                         vocab_size=200, epochs=4, batch_size=32, patience=10,
                         jit_compile=False)


def test_run_folder_rules(tmp_path):
    run, record = tmp_path / "run", {"data": "a"}
    assert prepare_run_folder(run, record, overwrite=False) is False  # new run
    assert prepare_run_folder(run, record, overwrite=False) is True  # same, interrupted
    with pytest.raises(RunFolderError, match="different keras-attn run"):
        prepare_run_folder(run, {"data": "b"}, overwrite=False)
    (run / CONFIG_FILE).write_text("{}")  # finished
    record_results(run, {"validation": {"accuracy": 0.5}})  # what it measured is not identity
    with pytest.raises(RunFolderError, match="finished"):
        prepare_run_folder(run, record, overwrite=False)
    (run / "notes.txt").write_text("mine")
    assert prepare_run_folder(run, {"data": "b"}, overwrite=True) is False
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt", "run.json"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(RunFolderError, match="nothing is deleted"):
        prepare_run_folder(foreign, record, overwrite=True)
    assert (foreign / "thesis.tex").read_text() == "precious"
    file = tmp_path / "a_file"
    file.write_text("precious")  # --out naming a file: a message, not [Errno 20]
    for path, where in ((file, "which is a file"), (file / "run", "lies under .*a_file")):
        with pytest.raises(NotADirectoryError, match=f"--out must name a folder.*{where}"):
            prepare_run_folder(path, record, overwrite=True)
    assert file.read_text() == "precious"


def test_resume_keeps_the_best_model_so_far(tmp_path):
    data = make_reference_task(400, seed=3)
    train, validation = split_train_validation(data, 0.25, seed=0)
    run = tmp_path / "run"
    with pytest.raises(SimulatedKillError):
        train_classifier(train, validation, SETTINGS, run, data_description="d",
                         callbacks=[InterruptAfterEpoch(1)], verbose=0)
    assert not (run / CONFIG_FILE).exists()
    # Pretend the best epoch so far was unbeatable: no resumed epoch may replace its model.
    history = (run / HISTORY_FILE).read_text().splitlines()
    header = history[0].split(",")
    rows = [row.split(",") for row in history[1:]]
    rows[0][header.index("val_loss")] = "0.0"
    (run / HISTORY_FILE).write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    best_model = tmp_path / "best_so_far.keras"
    best_model.write_bytes((run / MODEL_FILE).read_bytes())

    logs = []
    resumed = train_classifier(train, validation, SETTINGS, run, data_description="d",
                               log=logs.append, verbose=0)
    assert resumed.resumed_from_epoch == 2
    assert any("Resuming the interrupted run" in line for line in logs)
    for kept, best in zip(load_model(run / MODEL_FILE).get_weights(),
                          load_model(best_model).get_weights(), strict=True):
        np.testing.assert_array_equal(kept, best)  # the re-save for use keeps the weights
    assert [int(e) for e in resumed.history["epoch"]] == [0, 1, 2, 3]
    assert json.loads((run / CONFIG_FILE).read_text())["settings"]["epochs"] == 4


def test_resume_reads_the_saved_tokenizer(tmp_path, monkeypatch):
    """WordPiece and Unigram training may give other ids a second time (tokenizers#1794): a
    resumed run must embed the ids its first epochs learned, from the run's tokenizer.json."""
    import keras_attn.training.run_folder

    train, validation = split_train_validation(make_reference_task(200, seed=3), 0.25, seed=0)
    run = tmp_path / "run"
    with pytest.raises(SimulatedKillError):
        train_classifier(train, validation, SETTINGS, run, data_description="d",
                         callbacks=[InterruptAfterEpoch(0)], verbose=0)
    saved = (run / TOKENIZER_FILE).read_text(encoding="utf-8")
    train_again = keras_attn.training.run_folder.train_tokenizer
    # a second training differs
    monkeypatch.setattr(keras_attn.training.run_folder, "train_tokenizer",
                        lambda texts, model, vocab_size: train_again(texts, "bpe", 300))
    resumed = train_classifier(train, validation, SETTINGS, run, data_description="d",
                               verbose=0)
    assert resumed.resumed_from_epoch == 1
    assert resumed.tokenizer.to_str() == saved == (run / TOKENIZER_FILE).read_text("utf-8")


def test_texts_without_tokens_are_refused_before_anything_is_written(tmp_path):
    import numpy as np

    bad = TextDataset(["good", "  ", "bad", "fine"], np.array([0, 1, 1, 0]), ["a", "b"])
    with pytest.raises(ValueError, match="no words or symbols.*#1"):
        train_classifier(bad, bad, SETTINGS, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_run_leaves_a_model_that_predicts_without_xla(tmp_path):
    """Trained with jit_compile=True; the model.keras left for use must not carry it: XLA
    clamps out-of-range ids instead of rejecting them."""
    data = make_reference_task(120, seed=4)
    train, validation = split_train_validation(data, 0.25, seed=0)
    settings = dataclasses.replace(SETTINGS, epochs=1, jit_compile=True)
    run = train_classifier(train, validation, settings, tmp_path / "run", verbose=0)
    loaded = keras.models.load_model(run.run_dir / MODEL_FILE, safe_mode=True)
    assert loaded.jit_compile is False
    vocab_size = config_from_model(loaded).vocab_size
    with pytest.raises(Exception, match=rf"token_ids must lie in \[0, vocab_size={vocab_size}\)"):
        loaded.predict(np.array([[2, vocab_size, 3]]), verbose=0)


def test_learning_rate_is_constant_without_warmup_and_warms_up_then_decays_with_it():
    from keras_attn.training.classifier import learning_rate_schedule

    constant = dataclasses.replace(SETTINGS, warmup_fraction=0.0)
    assert learning_rate_schedule(constant, steps_per_epoch=10) == constant.learning_rate
    schedule = learning_rate_schedule(
        dataclasses.replace(SETTINGS, learning_rate=2e-3, warmup_fraction=0.25), 10)
    rates = [float(schedule(step)) for step in (0, 5, 10, 25, 39)]  # 4 epochs of 10 steps
    assert rates[0] == 0.0 and rates[1] == pytest.approx(1e-3)  # halfway up the warm-up
    assert rates[2] == pytest.approx(2e-3)  # the peak at the end of the first epoch
    assert rates[2] > rates[3] > rates[4] > 0  # cosine decay towards 0 by the last epoch


def test_balanced_class_weights_make_every_class_count_alike():
    from keras_attn.training.classifier import class_weights

    data = TextDataset(["a"] * 6, np.array([0, 0, 0, 0, 1, 1]), ["big", "small"])
    assert class_weights(data, "none") is None
    weights = class_weights(data, "balanced")
    assert weights == {0: pytest.approx(0.75), 1: pytest.approx(1.5)}
    assert 4 * weights[0] == pytest.approx(2 * weights[1])  # equal total weight per class


@pytest.mark.parametrize("field, value, message", [
    ("warmup_fraction", -0.1, r"warmup_fraction must be a number in \[0, 1\)"),
    ("warmup_fraction", 1, r"Received: warmup_fraction=1"),
    ("class_weight", "auto", r"class_weight must be one of \('none', 'balanced'\)"),
])
def test_bad_schedule_or_weighting_settings_are_clear_errors(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SETTINGS, **{field: value})


@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
def test_the_kept_model_is_the_best_epoch_by_the_monitor(monitor, tmp_path):
    """--monitor: the model left is the epoch with the lowest val_loss or the highest
    val_accuracy, and the run says which it kept and what the others scored."""
    train, validation = split_train_validation(make_reference_task(240, seed=5), 0.25, seed=0)
    settings = dataclasses.replace(SETTINGS, epochs=6, patience=6, monitor=monitor)
    run = train_classifier(train, validation, settings, tmp_path / "run", verbose=0)
    history = run.history
    kept = (int(np.argmax(history["val_accuracy"])) if monitor == "val_accuracy"
            else int(np.argmin(history["val_loss"])))
    assert run.validation_accuracy == pytest.approx(history["val_accuracy"][kept], abs=1e-6)
    summary = kept_epoch_summary(history, monitor)
    word = "highest" if monitor == "val_accuracy" else "lowest"
    assert summary.startswith(f"kept epoch {kept + 1} of 6, the {word} {monitor} (val_loss ")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["settings"][
        "monitor"] == monitor


def test_the_kept_epoch_summary_names_the_epochs_from_one():
    history = {"loss": [1.0, 0.8, 0.6, 0.5], "val_loss": [0.9, 0.7, 0.8, 1.1],
               "val_accuracy": [0.3, 0.5, 0.6, 0.55]}
    assert kept_epoch_summary(history, "val_loss") == (
        "kept epoch 2 of 4, the lowest val_loss (val_loss 0.7000, val_accuracy 0.5000); the "
        "last: val_loss 1.1000, val_accuracy 0.5500; the highest val_accuracy: 0.6000, at "
        "epoch 3")
    assert kept_epoch_summary(history, "val_accuracy").startswith(
        "kept epoch 3 of 4, the highest val_accuracy (val_loss 0.8000, val_accuracy 0.6000); "
        "the last: val_loss 1.1000, val_accuracy 0.5500; the lowest val_loss: 0.7000, at "
        "epoch 2")


def test_a_monitor_that_is_not_keras_s_is_refused():
    with pytest.raises(ValueError, match=r"monitor must be one of \('val_loss', "
                                         r"'val_accuracy'\). Received: monitor='accuracy'"):
        TrainSettings(monitor="accuracy")
