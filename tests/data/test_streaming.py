"""Training data streamed from files (keras_attn/data/streaming.py,
keras_attn/training/streamed.py):
the same records as load_texts, every training text exactly once per epoch in batches by
length, logits independent of the padding, resume, and bad input (exit 2, nothing written)."""

import collections
import csv
import dataclasses
import json

import keras
import numpy as np
import pytest
from interrupted_runs import InterruptAfterEpoch, SimulatedKillError

from export.artifact.tokenizer import train_tokenizer
from keras_attn.cli.main import main
from keras_attn.config import TrainSettings
from keras_attn.data.buckets import bucket_widths
from keras_attn.data.records import iter_records, load_texts
from keras_attn.data.streaming import TextStream, in_validation, scan_stream
from keras_attn.models.builders import build_classifier
from keras_attn.training.streamed import train_streaming

FIXTURE = "tests/fixtures/fortune_languages.jsonl"
MAX_LEN = 48
# The resumed run: one bucket width (16), so that few batch shapes are traced.
SETTINGS = TrainSettings(max_len=16, d_model=16, num_heads=2, ff_dim=32, num_layers=1,
                         vocab_size=300, epochs=2, batch_size=16, seed=3, jit_compile=False)
CLI_FLAGS = ["--stream", "--validation-split", "0.25", "--seed", "3", "--max-len", "16",
             "--d-model", "16", "--heads", "2", "--ff-dim", "32", "--layers", "1",
             "--vocab-size", "300", "--epochs", "2", "--batch-size", "16", "--no-jit"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """200 real texts (the fortune fixture, 12 languages) as a .jsonl file."""
    path = tmp_path_factory.mktemp("stream") / "texts.jsonl"
    lines = open(FIXTURE, encoding="utf-8").read().splitlines()[::2][:200]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def streams(data_file):
    data = scan_stream(data_file, validation_fraction=0.25, seed=3)
    tokenizer = train_tokenizer(load_texts(data_file).texts, model="wordpiece", vocab_size=300)
    return data, tokenizer, TextStream(data, "train", tokenizer, MAX_LEN, 16, seed=3,
                                       shuffle_buffer=7)


def _rows(dataset):
    """(ids without padding, label) of every row of a dataset of batches, and the shapes."""
    rows, shapes = [], []
    for ids, labels in dataset:
        ids = ids.numpy()
        shapes.append(ids.shape)
        rows += [(tuple(row[row != 0]), int(label)) for row, label in zip(ids, labels.numpy(),
                                                                             strict=True)]
    return rows, shapes


def test_records_match_load_texts_for_jsonl_csv_and_folder(data_file, tmp_path):
    dataset = load_texts(data_file)
    expected = [(text, dataset.class_names[label])
                for text, label in zip(dataset.texts, dataset.labels, strict=True)]
    with open(tmp_path / "texts.csv", "w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([("text", "label"), *expected])
    for index, (text, name) in enumerate(expected):
        (tmp_path / "folder" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "folder" / name / f"{index:04d}.txt").write_text(text, encoding="utf-8")
    for path in (data_file, tmp_path / "texts.csv"):
        assert [(text, label) for text, label, _ in iter_records(path)] == expected
    by_folder = sorted(expected, key=lambda pair: pair[1])  # a folder reads class by class
    assert [(t, label) for t, label, _ in iter_records(tmp_path / "folder")] == by_folder


def test_every_training_text_once_per_epoch_in_bucket_widths(streams, data_file):
    data, tokenizer, stream = streams
    dataset = load_texts(data_file)
    held_out = [in_validation(i, 3, 0.25) for i in range(len(dataset))]
    train = [i for i in range(len(dataset)) if not held_out[i]]
    assert data.counts.sum() == len(dataset) and data.size("validation") == sum(held_out)
    ids = tokenizer.encode_batch([dataset.texts[i] for i in train], MAX_LEN)
    expected = collections.Counter((tuple(row[row != 0]), int(dataset.labels[i]))
                                   for row, i in zip(ids, train, strict=True))
    widths = bucket_widths(MAX_LEN)
    orders = []
    for _ in range(2):  # two epochs: the same texts, another order
        rows, shapes = _rows(stream.dataset())
        assert collections.Counter(rows) == expected
        assert len(shapes) == len(stream)
        for (_, width), row_lengths in zip(shapes, _lengths_by_batch(rows, shapes),
                                               strict=True):
            assert width in widths and max(row_lengths) <= width  # padded to its bucket
            assert widths.index(width) == 0 or max(row_lengths) > widths[widths.index(width) - 1]
        short = collections.Counter(width for batch, width in shapes if batch < 16)
        assert all(count == 1 for count in short.values())  # one short batch per bucket
        orders.append(rows)
    assert orders[0] != orders[1]


def _lengths_by_batch(rows, shapes):
    start = 0
    for batch, _ in shapes:
        yield [len(ids) for ids, _ in rows[start:start + batch]]
        start += batch


def test_logits_do_not_depend_on_the_bucket_padding(streams):
    data, tokenizer, _ = streams
    validation = TextStream(data, "validation", tokenizer, MAX_LEN, 16, shuffle=False)
    keras.utils.set_random_seed(0)
    config = SETTINGS.model_config(tokenizer.vocab_size, len(data.class_names))
    model = build_classifier(dataclasses.replace(config, max_len=MAX_LEN))
    texts = [text for text, _, _ in data.records("validation")]
    alone = {}  # each text's logits, tokenized and run on its own: no padding at all
    for text in texts:
        ids = tokenizer.encode_batch([text], MAX_LEN)
        alone[tuple(ids[0])] = model.predict_on_batch(ids)[0]
    worst, rows = 0.0, 0
    for ids, _ in validation.dataset():
        ids = ids.numpy()
        for row, logits in zip(ids, model.predict_on_batch(ids), strict=True):
            worst = max(worst, float(np.abs(alone[tuple(row[row != 0])] - logits).max()))
            rows += 1
    assert rows == len(texts)
    assert worst < 1e-5


def test_an_interrupted_stream_run_resumes_through_the_cli(streams, data_file, tmp_path,
                                                          capsys, monkeypatch):
    data, _, _ = streams
    run = tmp_path / "run"
    with pytest.raises(SimulatedKillError):
        train_streaming(data, SETTINGS, run, data_description=str(data_file.resolve()),
                        callbacks=[InterruptAfterEpoch()], verbose=0)
    assert (run / "backup").is_dir() and not (run / "config.json").exists()
    saved_tokenizer = (run / "tokenizer.json").read_text("utf-8")
    record = json.loads((run / "run.json").read_text("utf-8"))
    assert record["data_sha256"] == data.sha256 and record["stream"]["validation_fraction"]
    # The same run as flags: `keras-attn train --stream` resumes it, then evaluates.
    epochs_read = []
    read = TextStream.records
    monkeypatch.setattr(TextStream, "records", lambda self, epoch: (
        epochs_read.append(epoch) if self.split == "train" else None) or read(self, epoch))
    assert main(["train", "--data", str(data_file), "--out", str(run), *CLI_FLAGS]) == 0
    assert epochs_read == [1]  # epoch 0's order was run before the kill
    out = capsys.readouterr().out
    assert "streamed from" in out and f"Resuming the interrupted run in {run} after epoch 1." in out
    assert "baseline skipped" in out
    assert [row.split(",")[0] for row in (run / "history.csv").read_text().splitlines()[1:]] \
        == ["0", "1"]
    assert (run / "tokenizer.json").read_text("utf-8") == saved_tokenizer
    assert (run / "config.json").is_file() and not (run / "backup").exists()
    results = json.loads((run / "run.json").read_text("utf-8"))["results"]
    assert results["validation"]["accuracy"] >= 0 and results["baseline"] is None


def test_epoch_orders_come_from_seed_and_epoch_alone(streams):
    data, tokenizer, stream = streams
    again = TextStream(data, "train", tokenizer, MAX_LEN, 16, seed=3, shuffle_buffer=7)
    assert list(again.records(5)) == list(stream.records(5))
    assert list(again.records(5)) != list(stream.records(4))


def test_train_stream_refuses_bad_data_and_writes_nothing(data_file, tmp_path, capsys):
    good = data_file.read_text("utf-8")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(good + "{not json\n", "utf-8")
    empty_text = tmp_path / "empty.jsonl"
    empty_text.write_text(good + '{"text": "\\u200b", "label": "en"}\n', "utf-8")
    for path, message in ((bad_json, "line 201 of"), (empty_text, "no words or symbols"),
                          (tmp_path / "none.jsonl", "does not exist")):
        out_dir = tmp_path / f"out_{path.stem}"
        assert main(["train", "--data", str(path), "--out", str(out_dir), *CLI_FLAGS]) == 2
        assert message in capsys.readouterr().err
        assert not out_dir.exists()


def test_a_folder_is_read_and_refused_as_load_texts_reads_and_refuses_it(tmp_path):
    """Only the wanted class folders are read (an unreadable 'unsup' folder is not touched);
    a class folder without .txt files and a wanted class without a folder are refused with
    load_texts's messages."""
    for name, text in (("en", "the cat"), ("fr", "le chat")):
        (tmp_path / name).mkdir()
        for index in range(6):
            (tmp_path / name / f"{index}.txt").write_text(f"{text} {index}", encoding="utf-8")
    (tmp_path / "unsup").mkdir()
    (tmp_path / "unsup" / "1.txt").write_bytes(b"\xff\xfe not UTF-8")
    records = [(t, label) for t, label, _ in iter_records(tmp_path, class_names=["en", "fr"])]
    assert records == [(f"the cat {i}", "en") for i in range(6)] + [
        (f"le chat {i}", "fr") for i in range(6)]
    scanned = scan_stream(tmp_path, class_names=["fr", "en"], validation_fraction=0.5)
    assert scanned.size("train") + scanned.size("validation") == 12
    assert sorted(scanned.records("train")) + sorted(scanned.records("validation")) != []
    (tmp_path / "de").mkdir()
    for classes in (["en", "de"], ["en", "es"]):
        with pytest.raises(Exception) as streamed:
            list(iter_records(tmp_path, class_names=classes))
        with pytest.raises(Exception) as in_memory:
            load_texts(tmp_path, class_names=classes)
        assert str(streamed.value) == str(in_memory.value)
        assert "class" in str(streamed.value)


def test_data_errors_name_the_flags_and_every_label_found_in_memory_and_streamed(tmp_path,
                                                                                capsys):
    """The CLI says --classes / --text-column, not load_texts' parameter names; a missing class
    lists every label of the file (--stream listed only the wanted ones it had found)."""
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"text {i}", "label": "xyz"[i % 3]}) + "\n"
                            for i in range(30)), "utf-8")
    cases = ((["--classes", "x,w"], "classes ['w'] given in --classes; the labels found are "
              "['x', 'y', 'z']"),
             (["--text-column", "body"], "(set --text-column / --label-column to the right"))
    for flags, message in cases:
        for stream in ([], ["--stream"]):
            out_dir = tmp_path / "out"
            in_memory = [flag for flag in CLI_FLAGS if flag != "--stream"]
            assert main(["train", "--data", str(path), "--out", str(out_dir), *in_memory,
                         *flags, *stream]) == 2
            assert message in capsys.readouterr().err, (flags, stream)
            assert not out_dir.exists()
