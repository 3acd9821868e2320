"""train --init-from: a classifier started from a train-lm run (keras_attn.training.pretrained): the
weights copied, widths and tokenizer taken over, every mismatch a clear error, resume, and the
provenance in run.json."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
from fp32_floor import fp32_tolerance
from interrupted_runs import InterruptAfterEpoch, SimulatedKillError
from repo_paths import FIXTURES

from export.artifact.manifest import sha256_of
from keras_attn.cli.main import main
from keras_attn.config import TrainSettings
from keras_attn.data.records import load_texts, split_train_validation
from keras_attn.models.builders import build_classifier, config_from_model, load_model, rebuild
from keras_attn.training.classifier import train_classifier
from keras_attn.training.pretrained import (
    InitFromError,
    copy_pretrained_weights,
    pretrained_settings,
    read_language_model_run,
)

# The language model's widths; the classifier runs below take them without repeating them.
LM_FLAGS = ["--max-len", "16", "--d-model", "16", "--heads", "2", "--ff-dim", "32", "--layers",
            "1", "--vocab-size", "300", "--tokenizer", "wordpiece", "--batch-size", "32",
            "--no-jit"]
TRAIN_FLAGS = ["--epochs", "1", "--batch-size", "32", "--no-jit"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A tiny language model trained for one epoch on real text (English fortunes), and a
    classifier started from it with a learning rate so small that it keeps the copied weights
    to within 1e-5."""
    root = tmp_path_factory.mktemp("init_from")
    texts = [json.loads(line)["text"].replace("\n", " ")
             for line in open(FIXTURES / "fortune_languages.jsonl", encoding="utf-8")]
    (root / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["train-lm", "--data", str(root / "texts.txt"), "--out", str(root / "lm"),
                 "--epochs", "1", *LM_FLAGS]) == 0
    assert main(["train", "--data", str(FIXTURES / "fortune_topics.jsonl"), "--out",
                 str(root / "still"), "--init-from", str(root / "lm"), "--learning-rate",
                 "1e-9", "--dropout", "0", "--init-attention", "causal", *TRAIN_FLAGS]) == 0
    return root


def _pairs(classifier, language_model):
    """(classifier weight, language-model weight) for every layer but the head."""
    for layer in classifier.layers:
        if layer.weights and layer.name != "logits":
            source = language_model.get_layer(layer.name).get_weights()
            yield from zip(layer.get_weights(), source, strict=True)


def test_the_embeddings_and_blocks_are_copied(root):
    language_model = load_model(root / "lm" / "model.keras")
    config = config_from_model(language_model)
    vocab_size = config.vocab_size - 1  # the end-of-text row is left out
    classifier = build_classifier(dataclasses.replace(config, vocab_size=vocab_size,
                                                      num_classes=3))
    copied = copy_pretrained_weights(classifier, read_language_model_run(root / "lm"))
    assert copied == ["embedding", "block_0"]
    pairs = list(_pairs(classifier, language_model))
    assert len(pairs) == len(classifier.weights) - 2  # all but the head's kernel and bias
    for mine, pretrained in pairs:
        np.testing.assert_array_equal(mine, pretrained[:len(mine)])
    assert len(pairs[0][1]) == vocab_size + 1


def test_the_cli_run_starts_from_the_language_model_and_records_it(root):
    run, lm = root / "still", root / "lm"
    language_model = load_model(lm / "model.keras")
    for mine, pretrained in _pairs(load_model(run / "model.keras"), language_model):
        np.testing.assert_allclose(mine, pretrained[:len(mine)], atol=1e-5)
    assert (run / "tokenizer.json").read_bytes() == (lm / "tokenizer.json").read_bytes()
    record = json.loads((run / "run.json").read_text())
    assert record["init_from"] == {"path": str(lm.resolve()),
                                   "model_sha256": sha256_of(lm / "model.keras"),
                                   "tokenizer_sha256": sha256_of(lm / "tokenizer.json")}
    model = json.loads((run / "config.json").read_text())["model"]
    lm_model = json.loads((lm / "config.json").read_text())["model"]
    for field in ("max_len", "d_model", "num_heads", "ff_dim", "num_layers", "activation",
                  "norm_first"):
        assert model[field] == lm_model[field], field
    assert model["vocab_size"] == lm_model["vocab_size"] - 1
    assert model["use_causal_mask"] is True  # --init-attention causal


def test_a_causal_classifier_survives_save_and_rebuild(root):
    model = load_model(root / "still" / "model.keras")
    assert config_from_model(model).use_causal_mask is True
    ids = np.array([[5, 9, 12, 7, 0, 0], [3, 4, 5, 6, 7, 8]])
    np.testing.assert_allclose(rebuild(model).predict(ids, verbose=0),
                               model.predict(ids, verbose=0), rtol=0,
                               atol=fp32_tolerance(model, ids))  # equal in exact arithmetic


@pytest.mark.parametrize("flags, message", [
    (["--d-model", "32"], "--d-model 32 disagrees with the language model"),
    (["--max-len", "64"], "which has max_len=16"),
    (["--heads", "4"], "--heads 4 disagrees"),
    (["--layers", "2"], "which has num_layers=1"),
    (["--ff-dim", "64"], "--ff-dim 64 disagrees"),
    (["--vocab-size", "999"], "which has vocab_size=300"),
    (["--tokenizer", "bpe"], "which has tokenizer=wordpiece"),
])
def test_a_flag_that_disagrees_with_the_language_model_is_an_error(root, tmp_path, capsys,
                                                                  flags, message):
    out = tmp_path / "run"
    assert main(["train", "--data", str(FIXTURES / "fortune_topics.jsonl"), "--out", str(out),
                 "--init-from", str(root / "lm"), *flags, *TRAIN_FLAGS]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def _interrupted(root, tmp_path):
    folder = tmp_path / "interrupted"
    shutil.copytree(root / "lm", folder)
    (folder / "config.json").unlink()
    return folder


def _without_model(root, tmp_path):
    folder = tmp_path / "no_model"
    shutil.copytree(root / "lm", folder)
    (folder / "model.keras").unlink()
    return folder


@pytest.mark.parametrize("folder, message", [
    (lambda root, tmp: tmp / "nowhere", "--init-from names no folder"),
    (lambda root, tmp: FIXTURES, "is not a keras-attn run folder (no run.json)"),
    (lambda root, tmp: root / "still", "holds a classifier run, not a language model"),
    (_interrupted, "holds a run that has not finished"),
    (_without_model, "lacks model.keras"),
])
def test_a_folder_that_is_no_finished_language_model_is_an_error(root, tmp_path, capsys,
                                                                  folder, message):
    out = tmp_path / "run"
    assert main(["train", "--data", str(FIXTURES / "fortune_topics.jsonl"), "--out", str(out),
                 "--init-from", str(folder(root, tmp_path)), *TRAIN_FLAGS]) == 2
    err = capsys.readouterr().err
    assert message in err and "Expected a finished `keras-attn train-lm` run folder" in err
    assert not out.exists()


def test_init_attention_needs_init_from(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(FIXTURES / "fortune_topics.jsonl"), "--out", str(out),
                 "--init-attention", "causal", *TRAIN_FLAGS]) == 2
    assert "give --init-from LM_RUN too" in capsys.readouterr().err
    assert not out.exists()


def test_an_interrupted_init_from_run_resumes_and_keeps_its_provenance(root, tmp_path):
    lm = read_language_model_run(root / "lm")
    lm_settings = json.loads((root / "lm" / "config.json").read_text())["settings"]
    settings = dataclasses.replace(TrainSettings(**lm_settings), epochs=2, use_causal_mask=False)
    data = load_texts(FIXTURES / "fortune_topics.jsonl")
    train, validation = split_train_validation(data.subset(np.arange(0, 320, 2)), 0.25, seed=0)
    run = tmp_path / "run"
    with pytest.raises(SimulatedKillError):
        train_classifier(train, validation, settings, run, data_description="d",
                         callbacks=[InterruptAfterEpoch(0)], verbose=0, init_from=lm)
    logs = []
    resumed = train_classifier(train, validation, settings, run, data_description="d",
                               verbose=0, init_from=lm, log=logs.append)
    assert resumed.resumed_from_epoch == 1
    assert any("Resuming the interrupted run" in line for line in logs)
    assert [int(epoch) for epoch in resumed.history["epoch"]] == [0, 1]
    assert json.loads((run / "run.json").read_text())["init_from"] == lm.record
    assert config_from_model(resumed.model).use_causal_mask is False


def test_reading_a_language_model_run_fingerprints_it(root):
    run = read_language_model_run(root / "lm")
    assert run.record["model_sha256"] == sha256_of(root / "lm" / "model.keras")
    assert run.tokenizer().vocab_size == run.config["model"]["vocab_size"] - 1
    # bidirectional unless --init-attention causal
    assert pretrained_settings(TrainSettings(), run, None).use_causal_mask is False
    assert pretrained_settings(TrainSettings(), run, "causal").use_causal_mask is True
    with pytest.raises(InitFromError, match="holds a classifier run"):
        read_language_model_run(root / "still")
