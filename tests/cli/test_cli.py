"""The keras-attn CLI end to end: train on folder and CSV data, export, predict without
TensorFlow, attend, resume after a kill, and every bad input with exit code 2."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from export_cases import BLOCK_IMPORTS, REPO_ROOT, run_python

from export.artifact.tokenizer import DEFAULT_MODEL, load_tokenizer
from keras_attn.cli.main import main
from keras_attn.data.reference_task import make_reference_task

TINY = ["--layers", "1", "--heads", "2", "--d-model", "16", "--ff-dim", "32", "--max-len",
        "24", "--batch-size", "32", "--vocab-size", "200", "--no-jit"]


def write_csv(path: Path, rows, header=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_folder(root: Path, texts_by_class: dict) -> Path:
    for name, texts in texts_by_class.items():
        (root / name).mkdir(parents=True)
        for i, text in enumerate(texts):
            (root / name / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run trained from a CSV through the CLI, exported to a version folder."""
    root = tmp_path_factory.mktemp("cli")
    task = make_reference_task(300, seed=0)
    names = ["first", "second"]
    data = write_csv(root / "task.csv",
                     [(t, names[y]) for t, y in zip(task.texts, task.labels, strict=True)])
    code = main(["train", "--data", str(data), "--out", str(root / "run"), "--epochs", "2",
                 *TINY, "--attention-dropout", "0.25",
                 "--export", str(root / "saved_models" / "task")])
    assert code == 0
    return root


def test_train_writes_model_tokenizer_config_curves_logs(trained):
    run = trained / "run"
    for name in ("model.keras", "tokenizer.json", "config.json", "history.csv",
                 "training_curves.png"):
        assert (run / name).is_file(), name
    assert any((run / "logs").rglob("*tfevents*"))
    assert not (run / "backup").exists()  # a finished run leaves no backup behind
    config = json.loads((run / "config.json").read_text())
    assert config["class_names"] == ["first", "second"] and config["model"]["max_len"] == 24
    assert matplotlib.image.imread(run / "training_curves.png").ndim == 3


def test_train_records_the_tokenizer_in_run_and_config(trained):
    for name in ("run.json", "config.json"):
        settings = json.loads((trained / "run" / name).read_text(encoding="utf-8"))["settings"]
        assert (settings["tokenizer"], settings["vocab_size"]) == (DEFAULT_MODEL, 200), name
    tokenizer = load_tokenizer(trained / "run" / "tokenizer.json")
    assert tokenizer.model == DEFAULT_MODEL and tokenizer.vocab_size <= 200


def test_train_reads_the_answer_where_pooling_says(trained, tmp_path):
    """--pooling token --readout-token it: the model reads at the id the run's tokenizer gives
    "it", recorded in run.json, config.json and the export's manifest, and it answers."""
    code = main(["train", "--data", str(trained / "task.csv"), "--out", str(tmp_path / "run"),
                 "--epochs", "1", *TINY, "--pooling", "token", "--readout-token", "it",
                 "--export", str(tmp_path / "models")])
    assert code == 0
    run = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    config = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    it = load_tokenizer(tmp_path / "run" / "tokenizer.json").token_id("it")
    assert (run["settings"]["pooling"], run["settings"]["readout_token"]) == ("token", "it")
    assert (config["model"]["pooling"], config["model"]["readout_token_id"]) == ("token", it)
    manifest = json.loads((tmp_path / "models" / "1" / "manifest.json").read_text("utf-8"))
    assert manifest["config"]["readout_token_id"] == it
    assert main(["verify", str(tmp_path / "models" / "1")]) == 0


def test_a_run_recorded_before_the_readout_settings_resumes(tmp_path):
    """A run.json written before pooling, readout_token and monitor existed resumes as the run
    it was (mean pooling, val_loss); one that asks for another value does not."""
    from keras_attn.training.run_folder import records_run

    then = {"pooling": "mean", "readout_token": None, "monitor": "val_loss"}
    record = {"settings": {"epochs": 3, **then}, "data": "d"}
    (tmp_path / "run.json").write_text(json.dumps(
        {"settings": {"epochs": 3}, "data": "d"}), encoding="utf-8")
    assert records_run(tmp_path, record)
    for other in ({"pooling": "token", "readout_token": "it"}, {"monitor": "val_accuracy"}):
        assert not records_run(tmp_path, {"settings": {"epochs": 3, **then, **other},
                                          "data": "d"})


def test_train_records_attention_dropout_in_run_and_config(trained):
    run = json.loads((trained / "run" / "run.json").read_text(encoding="utf-8"))
    config = json.loads((trained / "run" / "config.json").read_text(encoding="utf-8"))
    assert run["settings"]["attention_dropout"] == 0.25
    assert config["model"]["attention_dropout"] == 0.25
    assert (run["settings"]["dropout"], config["model"]["dropout"]) == (0.1, 0.1)  # --dropout's


def test_train_reports_the_model_beside_its_baseline(trained):
    """run.json keeps both validation reports; the export's manifest carries them too."""
    run = trained / "run"
    results = json.loads((run / "run.json").read_text(encoding="utf-8"))["results"]
    model, fitted = results["validation"], results["baseline"]
    assert set(model["classes"]) == set(fitted["classes"]) == {"first", "second"}
    assert fitted["name"].startswith("TF-IDF")
    assert sum(sum(row) for row in model["confusion_matrix"]) == 60  # the validation split
    assert matplotlib.image.imread(run / "confusion_matrix.png").ndim == 3
    manifest = json.loads((trained / "saved_models" / "task" / "1" / "manifest.json")
                          .read_text(encoding="utf-8"))
    assert manifest["evaluation"] == results


def test_train_on_a_class_folder(tmp_path):
    data = write_folder(tmp_path / "data", {
        "neg": ["bad film, dull", "awful plot !", "boring and slow", "not good"],
        "pos": ["great film", "loved it, fun", "a superb plot", "very good"]})
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs",
                 "1", *TINY]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["class_names"] == [
        "neg", "pos"]


def test_export_then_verify_and_second_export_is_version_2(trained, capsys):
    version_1 = trained / "saved_models" / "task" / "1"
    assert (version_1 / "model.onnx").is_file() and (version_1 / "tokenizer.json").is_file()
    assert main(["verify", str(version_1)]) == 0
    assert "keras vs onnxruntime" in capsys.readouterr().out
    assert main(["export", str(trained / "run"), "--out",
                 str(trained / "saved_models" / "task")]) == 0
    assert (trained / "saved_models" / "task" / "2" / "model.onnx").is_file()


def test_predict_runs_without_tensorflow(trained):
    version = trained / "saved_models" / "task" / "1"
    code = BLOCK_IMPORTS + (
        "from keras_attn.cli.main import main\n"
        "code = main(['predict', sys.argv[2], '--json', 'the dog hit a box, it was hungry.',"
        " 'Ünïcödé émoji 🐶 !'])\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "sys.exit(code)\n")
    result = run_python(code, "tensorflow,keras", str(version))
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert [p["label"] in ("first", "second") for p in predictions] == [True, True]
    for p in predictions:
        assert abs(sum(p["probabilities"].values()) - 1) < 1e-5


def test_predict_reads_a_file_and_stdin(trained, tmp_path, capsys):
    version = str(trained / "saved_models" / "task" / "1")
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat hit a box, it was tired.\n\nmy cup was near a dog, it was wet.\n")
    assert main(["predict", version, "--file", str(texts)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    result = subprocess.run([sys.executable, "-m", "keras_attn.cli", "predict", version,
                             "--file", "-"], input="a fox hit the lamp, it was sleepy.\n",
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "a fox hit the lamp" in result.stdout


# One text per "\n" or "\r\n" line: everything str.splitlines also breaks at stays inside.
LINE_FILE = ("the cat hit a box,\u2028it was tired.\r\n\n"
             "my cup\u2029was near a dog\x85it was wet.\n"
             "a fox\x0chit the\x0blamp\rit was sleepy.\r\n  \n"
             "\x1cthe end\x1d\x1e")  # a last line without a newline
LINE_TEXTS = ["the cat hit a box,\u2028it was tired.", "my cup\u2029was near a dog\x85it was wet.",
              "a fox\x0chit the\x0blamp\rit was sleepy.", "\x1cthe end\x1d\x1e"]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_read_texts_keeps_one_text_per_line_from_a_file_and_stdin(tmp_path, monkeypatch, bom):
    import argparse
    import io

    from keras_attn.cli.serving_commands import _read_texts

    data = bom + LINE_FILE.encode("utf-8")
    (tmp_path / "texts.txt").write_bytes(data)
    assert _read_texts(argparse.Namespace(file=str(tmp_path / "texts.txt"), texts=[])) \
        == LINE_TEXTS
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    assert _read_texts(argparse.Namespace(file="-", texts=[])) == LINE_TEXTS


def test_predict_gives_one_prediction_per_line(trained, tmp_path):
    version = str(trained / "saved_models" / "task" / "1")
    (tmp_path / "texts.txt").write_bytes(LINE_FILE.encode("utf-8"))
    result = subprocess.run([sys.executable, "-m", "keras_attn.cli", "predict", version,
                             "--json", "--file", str(tmp_path / "texts.txt")],
                            capture_output=True, text=True, encoding="utf-8", cwd=REPO_ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert [p["text"] for p in json.loads(result.stdout)] == LINE_TEXTS
    result = subprocess.run([sys.executable, "-m", "keras_attn.cli", "predict", version,
                             "--json", "--file", "-"], input=LINE_FILE.encode("utf-8"),
                            capture_output=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [p["text"] for p in json.loads(result.stdout.decode("utf-8"))] == LINE_TEXTS
    result = subprocess.run([sys.executable, "-m", "keras_attn.cli", "predict", version,
                             "--file", str(tmp_path / "texts.txt")], capture_output=True,
                            cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    shown = [line.split("\t")[-1] for line in result.stdout.decode("utf-8").splitlines()]
    # one line per text, its line breaks shown escaped (LINE_TEXTS is ASCII besides them)
    assert shown == [text.encode("unicode_escape").decode("ascii") for text in LINE_TEXTS]


# Lines that are TensorFlow's or Python's, not ours (issue 8, case 11).
FOREIGN = ("absl::InitializeLog", "oneDNN custom operations", "cudart_stub", "cuInit",
           "RuntimeWarning", "warnings.warn(", "Traceback")


def test_train_and_export_print_only_our_lines(tmp_path):
    """A user's shell (no TF_CPP_MIN_LOG_LEVEL set): TensorFlow's start-up log lines are
    dropped, and a left-out ONNX file is one `note:` line, not a RuntimeWarning."""
    task = make_reference_task(40, seed=0)
    data = write_csv(tmp_path / "task.csv", [(t, ["a", "b"][y]) for t, y in
                                             zip(task.texts, task.labels, strict=True)])
    code = ("import sys\nimport export.formats.optimize\n"
            "def broken_rewrite(proto):\n    raise RuntimeError('no rule applies')\n"
            "export.formats.optimize.rewrite = broken_rewrite\n"
            "from keras_attn.cli.main import main\nsys.exit(main(sys.argv[1:]))\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code, "train", "--data", str(data), "--out",
                             str(tmp_path / "run"), "--epochs", "1", *TINY, "--export",
                             str(tmp_path / "model")], capture_output=True, text=True,
                            cwd=REPO_ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for foreign in FOREIGN:
        assert foreign not in result.stdout
    notes = [line for line in result.stdout.splitlines() if line.startswith("note: ")]
    assert notes == ["note: model.optimized.onnx not shipped: the graph rewrite failed: "
                     "RuntimeError: no rule applies", "note: model.int8.onnx not shipped: "
                     "it is built from model.optimized.onnx, which was not shipped"]


def test_a_vocab_size_the_tokenizer_cannot_honour_is_said(tmp_path, capsys):
    """--vocab-size 3: WordPiece keeps every character, so the vocabulary came out larger,
    silently; now the run says so, and what it did. A unigram vocabulary below its characters
    is refused (exit 2) where the Rust trainer raised a bare Exception."""
    task = make_reference_task(40, seed=0)
    data = write_csv(tmp_path / "task.csv", [(t, ["a", "b"][y]) for t, y in
                                             zip(task.texts, task.labels, strict=True)])
    flags = [*TINY[:-3], "--no-jit", "--epochs", "1", "--data", str(data)]
    assert main(["train", *flags, "--vocab-size", "3", "--out", str(tmp_path / "run")]) == 0
    vocabulary = json.loads((tmp_path / "run" / "config.json").read_text())["model"]["vocab_size"]
    assert (f"tokenizer: vocab_size 3 (--vocab-size) was asked for; the wordpiece tokenizer "
            f"has {vocabulary} entries: it keeps every character it saw") in capsys.readouterr().out
    assert main(["train", *flags, "--vocab-size", "3", "--tokenizer", "unigram", "--out",
                 str(tmp_path / "unigram")]) == 2
    assert "too small for the unigram tokenizer" in capsys.readouterr().err
    assert not (tmp_path / "unigram").exists()


@pytest.mark.parametrize("stream", [False, True])
def test_monitor_picks_the_kept_epoch_and_the_run_says_which(tmp_path, capsys, stream):
    """--monitor val_accuracy, in memory and streamed: the line after training names the kept
    epoch (the highest val_accuracy of history.csv), the last one, and the lowest val_loss."""
    task = make_reference_task(80, seed=1)
    data = write_csv(tmp_path / "task.csv", [(t, ["a", "b"][y]) for t, y in
                                             zip(task.texts, task.labels, strict=True)])
    assert main(["train", *TINY, "--epochs", "3", "--patience", "3", "--data", str(data),
                 "--out", str(tmp_path / "run"), "--monitor", "val_accuracy",
                 *(["--stream"] if stream else [])]) == 0
    with open(tmp_path / "run" / "history.csv", newline="", encoding="utf-8") as file:
        accuracy = [float(row["val_accuracy"]) for row in csv.DictReader(file)]
    kept = accuracy.index(max(accuracy)) + 1
    out = capsys.readouterr().out
    assert f"kept epoch {kept} of 3, the highest val_accuracy (val_loss " in out, out
    assert "; the lowest val_loss: " in out and "the kept model's validation accuracy " in out
    with pytest.raises(SystemExit) as exit_code:  # argparse: exit 2 with usage
        main(["train", *TINY, "--data", str(data), "--out", str(tmp_path / "bad"),
              "--monitor", "accuracy"])
    assert exit_code.value.code == 2 and "invalid choice: 'accuracy'" in capsys.readouterr().err


def test_tokenizer_gives_the_same_ids_on_both_paths(trained):
    """The ids `train_classifier` feeds to fit equal the ids `predict` sends to onnxruntime."""
    # the training side: Keras loaded, encode_texts as fit uses it
    import keras_attn.training.classifier
    from keras_attn.data.records import encode_texts

    corpus = ["The dog, the ball!", "Ünïcödé — «quotes» and 東京 🐶", "it's 3.5%",
              "ÉCOLE\u200b fiancée", "a " * 40]
    assert keras_attn.training.classifier.encode_texts is encode_texts
    training_side = encode_texts(load_tokenizer(trained / "run" / "tokenizer.json"), corpus, 24)
    serving_dir = trained / "saved_models" / "task" / "1"
    code = BLOCK_IMPORTS + (
        "import json\nimport numpy as np\nfrom export import runtime\n"
        "from keras_attn.cli import main as cli\n"
        "sent = []\n"
        "real_predict = runtime.Predictor.predict_by_length\n"
        "def spy(self, ids, **kwargs):\n"
        "    sent.append(np.asarray(ids).tolist())\n"
        "    return real_predict(self, ids, **kwargs)\n"
        "runtime.Predictor.predict_by_length = spy\n"
        "assert cli.main(['predict', sys.argv[2], *json.loads(sys.argv[3])]) == 0\n"
        "print('IDS', json.dumps(sent[0]))\n")
    result = run_python(code, "tensorflow,keras", str(serving_dir), json.dumps(corpus))
    assert result.returncode == 0, result.stderr
    sent = json.loads(result.stdout.split("IDS ", 1)[1])
    assert sent == training_side.tolist()
    assert len(sent[-1]) == 24  # truncated to max_len on both paths



def test_attend_draws_one_png_per_block_and_head(trained, tmp_path):
    out = tmp_path / "maps"
    assert main(["attend", str(trained / "run" / "model.keras"),
                 "the dog hit a box, it was hungry.", "--out", str(out)]) == 0
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["block0_head0.png", "block0_head1.png"]
    assert matplotlib.image.imread(pngs[0]).ndim == 3
    assert main(["attend", str(trained / "run"), "it", "--out", str(out)]) == 2  # not empty
    from_export = tmp_path / "from_export"
    assert main(["attend", str(trained / "saved_models" / "task" / "1"), "the cat hit a cup.",
                 "--out", str(from_export)]) == 0
    assert len(list(from_export.glob("*.png"))) == 2


def test_attend_on_an_export_runs_attention_onnx_without_tensorflow(trained, tmp_path):
    """From a version folder, attend draws from attention.onnx in onnxruntime: the same PNGs
    as from the run folder's Keras model, in a process where TensorFlow and Keras cannot be
    imported."""
    version = trained / "saved_models" / "task" / "1"
    text = "the dog hit a box, it was hungry."
    code = BLOCK_IMPORTS + (
        "from keras_attn.cli import main as cli\n"
        "assert cli.main(['attend', sys.argv[2], sys.argv[3], '--out', sys.argv[4]]) == 0\n")
    result = run_python(code, "tensorflow,keras", str(version), text, str(tmp_path / "onnx"))
    assert result.returncode == 0, result.stderr
    assert main(["attend", str(trained / "run"), text, "--out", str(tmp_path / "keras")]) == 0
    onnx_pngs = sorted((tmp_path / "onnx").glob("*.png"))
    assert [p.name for p in onnx_pngs] == ["block0_head0.png", "block0_head1.png"]
    for png in onnx_pngs:  # the weights agree to 1e-6: the drawn pixels are the same
        np.testing.assert_array_equal(matplotlib.image.imread(png),
                                      matplotlib.image.imread(tmp_path / "keras" / png.name))


def test_verify_of_a_missing_folder_is_bad_input(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope")]) == 2
    assert "No such folder" in capsys.readouterr().err


def test_resume_after_a_kill(tmp_path):
    task = make_reference_task(3000, seed=2)
    data = write_csv(tmp_path / "d.csv", zip(task.texts, task.labels, strict=True))
    command = [sys.executable, "-m", "keras_attn.cli", "train", "--data", str(data), "--out",
               str(tmp_path / "run"), "--epochs", "12", "--patience", "12", *TINY]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    metadata = tmp_path / "run" / "backup" / "training_metadata.json"
    deadline = time.time() + 240
    while not (metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0)
               >= 2):
        assert process.poll() is None and time.time() < deadline, "training ended too soon"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_after = json.loads(metadata.read_text())["epoch"]
    assert not (tmp_path / "run" / "config.json").exists()

    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"Resuming the interrupted run in {tmp_path / 'run'} after epoch" in result.stdout
    epochs = [int(row["epoch"]) for row in
              csv.DictReader(open(tmp_path / "run" / "history.csv", encoding="utf-8"))]
    assert epochs[0] == 0 and epochs[-1] == 11 and killed_after in epochs
    assert (tmp_path / "run" / "config.json").exists()


def bad_inputs(tmp_path):
    write_folder(tmp_path / "one_class", {"only": ["a text", "another text"]})
    write_folder(tmp_path / "latin1", {"a": ["fine", "ok"], "b": ["good", "well"]})
    (tmp_path / "latin1" / "b" / "bad.txt").write_bytes("café".encode("latin-1"))
    (tmp_path / "empty").mkdir()
    write_csv(tmp_path / "nolabel.csv", [("x", "y")], header=("text", "sentiment"))
    write_csv(tmp_path / "ok.csv", [("good", "p"), ("bad", "n")] * 5)
    (tmp_path / "latin1.csv").write_bytes("text,label\ncafé,a\nthé,b\n".encode("latin-1"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("my own file")
    return {
        "missing folder": (["--data", str(tmp_path / "nope")], "nope"),
        "empty folder": (["--data", str(tmp_path / "empty")], "empty"),
        "single class": (["--data", str(tmp_path / "one_class")], "class"),
        "non-UTF-8 file": (["--data", str(tmp_path / "latin1")], "bad.txt"),
        "CSV without label column": (["--data", str(tmp_path / "nolabel.csv")], "label"),
        "d_model not divisible": (["--data", str(tmp_path / "ok.csv"), "--d-model", "10",
                                   "--heads", "4"], "--d-model 10, --heads 4"),
        "max_len < 1": (["--data", str(tmp_path / "ok.csv"), "--max-len", "0"], "--max-len 0"),
        "epochs < 1": (["--data", str(tmp_path / "ok.csv"), "--epochs", "0"], "--epochs 0"),
        "vocab size < 3": (["--data", str(tmp_path / "ok.csv"), "--vocab-size", "2"],
                           "--vocab-size 2"),
        "batch size < 1": (["--data", str(tmp_path / "ok.csv"), "--batch-size", "0"],
                           "--batch-size 0"),
        "learning rate <= 0": (["--data", str(tmp_path / "ok.csv"), "--learning-rate", "0"],
                               "learning_rate"),
        "attention dropout 1": (["--data", str(tmp_path / "ok.csv"), "--attention-dropout",
                                 "1"], "expected a rate in [0, 1). Received: "
                                       "--attention-dropout 1.0"),
        "attention dropout < 0": (["--data", str(tmp_path / "ok.csv"), "--attention-dropout",
                                   "-0.1"], "Received: --attention-dropout -0.1"),
        "unknown class": (["--data", str(tmp_path / "ok.csv"), "--classes", "p,zzz"], "zzz"),
        "non-UTF-8 CSV": (["--data", str(tmp_path / "latin1.csv")], "latin1.csv"),
        "foreign output folder": (["--data", str(tmp_path / "ok.csv"), "--out",
                                   str(tmp_path / "other")], "not a keras-attn run"),
        # refused before training: the export's [Errno 17] came after a whole run
        "output folder is a file": (["--data", str(tmp_path / "ok.csv"), "--out",
                                     str(tmp_path / "ok.csv")], "--out must name a folder"),
        "export folder is a file": (["--data", str(tmp_path / "ok.csv"), "--export",
                                     str(tmp_path / "ok.csv")], "--export must name a folder"),
        # the readout token is checked against the trained vocabulary before anything is written
        "readout token not in the vocabulary": (
            ["--data", str(tmp_path / "ok.csv"), "--pooling", "token", "--readout-token", "zzz"],
            "--readout-token 'zzz' cannot be read at: 'zzz' is not one token of this vocabulary"),
        "readout token not in the vocabulary, streamed": (
            ["--data", str(tmp_path / "ok.csv"), "--stream", "--pooling", "token",
             "--readout-token", "zzz"], "--readout-token 'zzz' cannot be read at"),
        "readout token without token pooling": (
            ["--data", str(tmp_path / "ok.csv"), "--readout-token", "good"],
            "Received: --pooling 'mean', --readout-token 'good'"),
        "token pooling without a readout token": (
            ["--data", str(tmp_path / "ok.csv"), "--pooling", "token"],
            "--pooling 'token' reads at readout_token, a word of the training texts (e.g. "
            "--readout-token 'it'). Received: --readout-token None"),
    }


CASES = ["missing folder", "empty folder", "single class", "non-UTF-8 file",
         "CSV without label column", "d_model not divisible", "max_len < 1", "epochs < 1",
         "vocab size < 3",
         "batch size < 1", "learning rate <= 0", "attention dropout 1",
         "attention dropout < 0", "unknown class", "non-UTF-8 CSV",
         "foreign output folder", "output folder is a file", "export folder is a file",
         "readout token not in the vocabulary", "readout token not in the vocabulary, streamed",
         "readout token without token pooling", "token pooling without a readout token"]


@pytest.mark.parametrize("case", CASES)
def test_bad_train_input_exits_2_and_writes_nothing(case, tmp_path, capsys):
    flags, message = bad_inputs(tmp_path)[case]
    out = [] if "--out" in flags else ["--out", str(tmp_path / "run")]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["train", *TINY, "--epochs", "1", *flags, *out]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_text_that_tokenizes_to_nothing(trained, tmp_path, capsys):
    version = str(trained / "saved_models" / "task" / "1")
    for text in ("   ", "\u200b"):  # blanks; only an invisible character
        assert main(["predict", version, "fine", text]) == 2
        assert "no words or symbols" in capsys.readouterr().err
    write_csv(tmp_path / "blank.csv", [("good", "a"), ("bad", "b"), ("", "a"), ("ok", "b"),
                                       ("fine", "a"), ("poor", "b")])
    assert main(["train", "--data", str(tmp_path / "blank.csv"), "--out",
                 str(tmp_path / "run"), *TINY]) == 2
    error = capsys.readouterr().err  # named where it stands, not by its place in a split
    assert "no words or symbols" in error and "'' at line 4 of" in error


def test_a_different_run_is_not_overwritten_without_the_flag(trained, tmp_path, capsys):
    data = write_csv(tmp_path / "other.csv", [("good", "p"), ("bad", "n")] * 5)
    model_before = (trained / "run" / "model.keras").read_bytes()
    assert main(["train", "--data", str(data), "--out", str(trained / "run"), *TINY]) == 2
    assert "different keras-attn run" in capsys.readouterr().err
    assert (trained / "run" / "model.keras").read_bytes() == model_before


def test_overwrite_replaces_only_the_run_files(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", [("good film", "p"), ("bad film", "n")] * 6)
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--data", str(data), "--out", str(run)]) == 0
    (run / "my_notes.txt").write_text("keep me")
    other = write_csv(tmp_path / "other.csv", [("fine", "p"), ("poor", "n")] * 6)
    assert main(["train", *TINY, "--epochs", "1", "--data", str(other), "--out", str(run)]) == 2
    assert main(["train", *TINY, "--epochs", "1", "--data", str(other), "--out", str(run),
                 "--overwrite"]) == 0
    assert (run / "my_notes.txt").read_text() == "keep me"
    assert str(other.resolve()) in (run / "run.json").read_text()


def test_classes_flag_selects_and_orders_classes(tmp_path):
    data = write_folder(tmp_path / "imdb", {
        "neg": ["bad", "awful", "dull", "poor"], "pos": ["good", "great", "fine", "fun"],
        "unsup": ["a review", "another", "more", "text"]})
    assert main(["train", *TINY, "--epochs", "1", "--data", str(data), "--classes",
                 "pos,neg", "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["class_names"] == [
        "pos", "neg"]


def test_attend_overwrite_removes_stale_heatmaps(trained, tmp_path):
    out = tmp_path / "maps"
    out.mkdir()
    (out / "block7_head9.png").write_bytes(b"stale")
    assert main(["attend", str(trained / "run"), "a dog.", "--out", str(out),
                 "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["block0_head0.png", "block0_head1.png"]
    assert main(["attend", str(trained / "run"), "a dog.", "--out",
                 str(out / "block0_head0.png")]) == 2


def test_attend_html_writes_the_viewer_and_keeps_what_is_there(trained, tmp_path, capsys):
    """--html FILE: the viewer of the run folder's and of the export's attention, the same
    tokens and weights; a FILE already there is kept unless --overwrite, a folder refused."""
    def viewer_data(path):
        found = re.search(r'type="application/json">(.*?)</script>', path.read_text("utf-8"))
        return json.loads(found.group(1))

    text = "the dog hit a box, it was hungry."
    html = tmp_path / "views" / "attention.html"  # a folder that is not there yet is made
    assert main(["attend", str(trained / "run"), text, "--out", str(tmp_path / "run_png"),
                 "--html", str(html)]) == 0
    from_run = viewer_data(html)
    assert from_run["model_name"] == "run" and from_run["model_version"] is None
    assert from_run["text"] == text and "it" in from_run["tokens"]
    capsys.readouterr()
    before = html.read_bytes()
    assert main(["attend", str(trained / "saved_models" / "task" / "1"), text, "--out",
                 str(tmp_path / "export_png"), "--html", str(html)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert html.read_bytes() == before and not (tmp_path / "export_png").exists()
    assert [path.name for path in html.parent.iterdir()] == [html.name]  # no file left over
    assert main(["attend", str(trained / "saved_models" / "task" / "1"), text, "--out",
                 str(tmp_path / "export_png"), "--html", str(html), "--overwrite"]) == 0
    from_export = viewer_data(html)
    assert (from_export["model_name"], from_export["model_version"]) == ("task", "1")
    assert from_export["tokens"] == from_run["tokens"]
    np.testing.assert_allclose(from_export["attentions"], from_run["attentions"], atol=2e-4)
    assert main(["attend", str(trained / "run"), text, "--out", str(tmp_path / "png3"),
                 "--html", str(tmp_path)]) == 2
    assert "--html must name a file" in capsys.readouterr().err


def test_predict_input_errors(trained, tmp_path, capsys):
    version = str(trained / "saved_models" / "task" / "1")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café\n".encode("latin-1"))
    assert main(["predict", version, "--file", str(latin1)]) == 2
    assert re.search(r"--file .*latin1\.txt: The file is not valid UTF-8 text \(line 1, byte 3\)",
                     capsys.readouterr().err)
    utf16 = tmp_path / "notepad.txt"
    utf16.write_bytes("café\n".encode("utf-16"))  # with its byte order mark, as Notepad saves
    assert main(["predict", version, "--file", str(utf16)]) == 2
    assert re.search(r"The file is UTF-16LE text .*`iconv -f UTF-16 -t UTF-8 .*notepad",
                     capsys.readouterr().err)
    assert main(["predict", version, "--file", str(latin1), "and a text"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["predict", version, "--file", str(tmp_path / "missing.txt")]) == 2
    assert "Cannot read --file" in capsys.readouterr().err
    # A byte that is not UTF-8 in argv reaches Python as a lone surrogate (surrogateescape).
    assert main(["predict", version, "caf\udce9"]) == 2
    assert "lone UTF-16 surrogate U+DCE9" in capsys.readouterr().err


def test_predict_refuses_a_language_model(capsys):
    from export_cases import LANGUAGE_MODEL, exported

    _, result = exported(LANGUAGE_MODEL)
    assert main(["predict", str(result.path), "hello"]) == 2
    assert "holds a language_model" in capsys.readouterr().err


def test_predict_takes_an_onnx_file_with_the_tokenizer_of_its_version_folder(trained, capsys):
    version = trained / "saved_models" / "task" / "1"
    text = "the dog hit a box, it was hungry."
    assert main(["predict", str(version), "--json", text]) == 0
    from_folder = json.loads(capsys.readouterr().out)
    for name in ("model.onnx", "model.optimized.onnx"):
        assert main(["predict", str(version / name), "--json", text]) == 0
        assert json.loads(capsys.readouterr().out) == from_folder


def test_predict_and_verify_name_the_folder_to_give_instead(trained, tmp_path, capsys):
    from export.artifact.versions import existing_versions

    model_folder = trained / "saved_models" / "task"
    versions = existing_versions(model_folder)
    interrupted = tmp_path / "int4"  # a run stopped before it wrote a model
    interrupted.mkdir()
    (interrupted / "run.json").write_text("{}", encoding="utf-8")
    plain = tmp_path / "plain"
    plain.mkdir()
    expected = {
        model_folder: f"{model_folder} is a model folder holding versions {versions}; {{}} "
                      f"takes an export version folder{{}}, such as "
                      f"{model_folder / str(versions[-1])} (the latest). "
                      f"Received: {model_folder}",
        trained / "run": f"{trained / 'run'} is a training run folder; {{}} takes an export "
                         f"version folder{{}}. Export the finished run first (keras-attn "
                         f"export {trained / 'run'}) and give the version folder it writes. "
                         f"Received: {trained / 'run'}",
        interrupted: f"{interrupted} is a training run folder;",
        plain: f"Received: '{plain}', a folder without model.onnx",
    }
    for path, words in expected.items():
        for command, takes in (("predict", ", or an .onnx file in one"), ("verify", "")):
            if command == "verify" and path == plain:
                continue  # a version folder without its files: verify's own check, exit 1
            assert main([command, str(path), *(["a text"] if command == "predict" else [])]) \
                == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "model.onnx'" not in err, err
            assert words.format(command, takes) in err, err
