"""`keras-attn evaluate` on a run folder (Keras) and a version folder (onnxruntime), and
`train --validation-data`: test-set scores checked against scikit-learn called here, the
baseline refitted on exactly the run's training split, and every bad input with exit code 2."""

import csv
import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from export_cases import BLOCK_IMPORTS, run_python
from sklearn import metrics

from export import runtime
from export.artifact.tokenizer import load_tokenizer
from keras_attn.cli.main import main
from keras_attn.data.records import encode_texts, load_texts, split_train_validation
from keras_attn.data.reference_task import make_reference_task
from keras_attn.evaluation.baseline import fit_baseline

TINY = ["--layers", "1", "--heads", "2", "--d-model", "16", "--ff-dim", "32", "--max-len",
        "24", "--batch-size", "32", "--vocab-size", "200", "--no-jit", "--epochs", "2"]
NAMES = ["first", "second"]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "version_folders"


def write_task(path: Path, examples: int, seed: int, names=NAMES) -> Path:
    task = make_reference_task(examples, seed=seed)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows((text, names[label]) for text, label in zip(task.texts, task.labels,
                                                                      strict=True))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run trained on a split of train.csv, exported; test.csv drawn apart."""
    root = tmp_path_factory.mktemp("evaluate")
    write_task(root / "train.csv", 300, seed=0)
    write_task(root / "test.csv", 120, seed=7)
    assert main(["train", "--data", str(root / "train.csv"), "--out", str(root / "run"), *TINY,
                 "--export", str(root / "saved_models" / "task")]) == 0
    return root


def evaluate_json(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["evaluate", *map(str, args), "--json", "--no-plot"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_version_folder_is_scored_in_onnxruntime_as_scikit_learn_scores_it(trained, capsys):
    version = trained / "saved_models" / "task" / "1"
    result = evaluate_json(capsys, version, "--data", trained / "test.csv")
    assert result["runtime"] == "onnxruntime" and result["texts"] == 120
    test = load_texts(trained / "test.csv", class_names=NAMES)
    predictor = runtime.load(version)
    ids = encode_texts(load_tokenizer(version / "tokenizer.json"), test.texts, predictor.max_len)
    predicted = np.argmax(predictor.predict(ids), axis=-1)
    report = result["report"]
    assert report["accuracy"] == pytest.approx(metrics.accuracy_score(test.labels, predicted))
    assert report["macro_f1"] == pytest.approx(metrics.f1_score(test.labels, predicted,
                                                                average="macro"))
    assert report["confusion_matrix"] == metrics.confusion_matrix(test.labels,
                                                                  predicted).tolist()
    assert result["in_training_split"] == 0


def test_a_version_folder_is_scored_without_tensorflow(trained):
    code = BLOCK_IMPORTS + (
        "from keras_attn.cli.main import main\n"
        "code = main(['evaluate', sys.argv[2], '--data', sys.argv[3], '--json', '--no-plot'])\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "sys.exit(code)\n")
    result = run_python(code, "tensorflow,keras", str(trained / "saved_models" / "task" / "1"),
                        str(trained / "test.csv"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["baseline"]["name"].startswith("TF-IDF")


def test_the_run_folder_scores_the_same_in_keras(trained, capsys):
    from_run = evaluate_json(capsys, trained / "run", "--data", trained / "test.csv")
    from_version = evaluate_json(capsys, trained / "saved_models" / "task" / "1", "--data",
                                 trained / "test.csv")
    assert from_run["runtime"] == "keras"
    assert from_run["report"] == from_version["report"]
    assert from_run["baseline"] == from_version["baseline"]  # the manifest carries the record


def test_the_baseline_is_refitted_on_the_runs_own_training_split(trained, capsys):
    result = evaluate_json(capsys, trained / "run", "--data", trained / "test.csv")
    train, _ = split_train_validation(load_texts(trained / "train.csv"), 0.2, seed=0)
    expected = fit_baseline(train, load_texts(trained / "test.csv", class_names=NAMES))
    assert result["baseline"] == expected and result["baseline_skipped"] is None


def test_the_text_report_prints_the_table_the_matrix_and_draws_it(trained, tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(trained / "run"), "--data", str(trained / "test.csv")]) == 0
    out = capsys.readouterr().out
    assert "120 test texts from" in out and "scored in keras" in out
    assert "test accuracy: keras-attn " in out and "| baseline " in out
    assert "test macro-F1: keras-attn " in out
    assert "actual \\ predicted  first  second" in out
    assert matplotlib.image.imread(tmp_path / "confusion_matrix.png").ndim == 3
    # A second run does not draw over the first's PNG unless asked to.
    assert main(["evaluate", str(trained / "run"), "--data", str(trained / "test.csv")]) == 2
    assert "confusion_matrix.png exists; pass --overwrite" in capsys.readouterr().err
    assert main(["evaluate", str(trained / "run"), "--data", str(trained / "test.csv"),
                 "--plot", "other.png"]) == 0
    assert (tmp_path / "other.png").is_file()


def test_test_texts_seen_in_training_are_counted(trained, capsys):
    result = evaluate_json(capsys, trained / "run", "--data", trained / "train.csv")
    assert result["in_training_split"] == 240  # the 80% of train.csv the run trained on


def test_changed_training_data_skips_the_baseline_and_says_why(trained, tmp_path, capsys):
    run = tmp_path / "run"
    data = write_task(tmp_path / "train.csv", 300, seed=0)
    assert main(["train", "--data", str(data), "--out", str(run), *TINY]) == 0
    write_task(data, 300, seed=3)  # other sentences under the same name
    result = evaluate_json(capsys, run, "--data", trained / "test.csv")
    assert result["baseline"] is None
    assert "training data has changed since it trained" in result["baseline_skipped"]
    data.unlink()
    result = evaluate_json(capsys, run, "--data", trained / "test.csv")
    assert "cannot be read again" in result["baseline_skipped"]


def test_train_takes_a_validation_set_of_its_own(tmp_path, capsys):
    data, held = write_task(tmp_path / "train.csv", 200, 0), write_task(tmp_path / "v.csv", 50, 9)
    assert main(["train", "--data", str(data), "--validation-data", str(held), "--out",
                 str(tmp_path / "run"), *TINY]) == 0
    assert "200 train / 50 validation texts (from " in capsys.readouterr().out
    results = json.loads((tmp_path / "run" / "run.json").read_text())["results"]
    assert sum(map(sum, results["validation"]["confusion_matrix"])) == 50
    assert results["training_data"]["validation_split"] is None
    result = evaluate_json(capsys, tmp_path / "run", "--data", held)
    assert result["baseline"] == fit_baseline(load_texts(data), load_texts(held))
    assert main(["train", "--data", str(data), "--validation-data", str(data), "--out",
                 str(tmp_path / "same"), *TINY]) == 0
    assert "warning: 200 of the 200 validation texts are also training texts" in \
        capsys.readouterr().out


@pytest.mark.parametrize("case", ["unknown label", "language model", "not a model",
                                  "both validations", "bad column"])
def test_bad_input_exits_2_with_one_line(case, trained, tmp_path, capsys):
    test = trained / "test.csv"
    if case == "unknown label":
        args = ["evaluate", str(trained / "run"), "--data",
                str(write_task(tmp_path / "t.csv", 20, 1, names=["first", "third"]))]
        expected = "The label 'third' at line"
    elif case == "language model":
        args = ["evaluate", str(FIXTURES / "lm" / "1"), "--data", str(test)]
        expected = "evaluate scores a classifier"
    elif case == "not a model":
        args = ["evaluate", str(tmp_path), "--data", str(test)]
        expected = "evaluate takes a run folder (with run.json) or an export version folder"
    elif case == "both validations":
        args = ["train", "--data", str(test), "--validation-data", str(test),
                "--validation-split", "0.1", "--out", str(tmp_path / "r")]
        expected = "Give --validation-data or --validation-split, not both"
    else:
        args = ["evaluate", str(trained / "run"), "--data", str(test), "--text-column", "body"]
        expected = "--text-column"
    capsys.readouterr()
    assert main([*args, "--no-plot"] if args[0] == "evaluate" else args) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err
    assert not (tmp_path / "r").exists()
