"""train-lm: reading raw text, packing windows, the run folder, resume, bad input; `generate` on
a run folder (Keras) and on its export (onnxruntime, with TensorFlow unimportable)."""

import json

import numpy as np
import pytest
from export_cases import BLOCK_IMPORTS, run_python
from interrupted_runs import InterruptAfterEpoch, SimulatedKillError
from repo_paths import FIXTURES

from export.artifact.tokenizer import train_tokenizer
from keras_attn.cli.main import main
from keras_attn.config import TrainSettings
from keras_attn.data.lm_windows import load_lm_texts, pack_windows, split_texts, token_stream
from keras_attn.data.records import DataError
from keras_attn.training.language_model import train_language_model, unigram_perplexity

FIXTURE = FIXTURES / "fortune_topics.jsonl"
TINY = ["--max-len", "16", "--d-model", "16", "--heads", "2", "--ff-dim", "32", "--layers", "1",
        "--vocab-size", "300", "--batch-size", "32", "--no-jit", "--tokenizer", "wordpiece"]
SETTINGS = TrainSettings(max_len=16, d_model=16, num_heads=2, ff_dim=32, num_layers=1,
                         vocab_size=200, epochs=3, batch_size=32, patience=5, jit_compile=False)


def _fortunes(count=None):
    return [json.loads(line)["text"] for line in open(FIXTURE, encoding="utf-8")][:count]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny language model trained on real text (fortunes) through the CLI, and exported."""
    root = tmp_path_factory.mktemp("lm")
    lines = root / "fortunes.txt"
    lines.write_text("\n".join(text.replace("\n", " ") for text in _fortunes()) + "\n",
                     encoding="utf-8")
    code = main(["train-lm", "--data", str(lines), "--out", str(root / "run"), "--epochs", "2",
                 *TINY, "--attention-dropout", "0.2", "--export",
                 str(root / "saved_models" / "lm")])
    assert code == 0
    return root


def test_train_lm_writes_the_run_folder_and_reports_perplexity(trained, capsys):
    run = trained / "run"
    for name in ("run.json", "model.keras", "tokenizer.json", "config.json", "history.csv",
                 "training_curves.png", "logs"):
        assert (run / name).exists(), name
    assert not (run / "backup").exists()  # removed once the run finished
    history = (run / "history.csv").read_text().splitlines()
    assert "val_perplexity" in history[0] and len(history) == 3
    config = json.loads((run / "config.json").read_text())
    tokenizer_size = json.loads((run / "tokenizer.json").read_text())["model"]["vocab"]
    assert config["end_of_text_id"] == len(tokenizer_size)
    assert config["model"]["vocab_size"] == len(tokenizer_size) + 1
    results = json.loads((run / "run.json").read_text())["results"]
    assert results["validation_perplexity"] == pytest.approx(
        np.exp(results["validation_loss"]))
    assert 1 < results["unigram_perplexity"] < config["model"]["vocab_size"]
    scores = results["every_validation_token"]  # keras_attn.evaluation.language_model_scores
    assert scores["kneser_ney"]["order"] == 3 and scores["bytes"] > scores["tokens"] > 0
    for name in ("model", "kneser_ney"):
        assert scores[name]["perplexity"] > 1 and scores[name]["bits_per_byte"] > 0
    settings = json.loads((run / "run.json").read_text())["settings"]
    assert settings["attention_dropout"] == config["model"]["attention_dropout"] == 0.2


def test_train_lm_last_line_is_the_validation_perplexity(tmp_path, capsys):
    data = tmp_path / "texts"
    (data / "deep" / "er").mkdir(parents=True)
    for index, text in enumerate(_fortunes(120)):
        (data / ("deep/er" if index % 2 else ".") / f"{index}.txt").write_text(text, "utf-8")
    assert main(["train-lm", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs",
                 "1", *TINY]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("validation perplexity: ")
    assert "(unigram baseline: " in lines[-1]
    (baseline,) = [line for line in lines if line.startswith("every validation token (")]
    assert "bits per byte | Kneser-Ney 3-gram baseline on the same tokens: perplexity" in baseline
    assert any(line.startswith(("the model beats its n-gram baseline by ",
                                "the model does NOT beat its n-gram baseline: "))
               for line in lines)
    assert any(line.startswith("epoch 1/1: loss ") and "validation loss" in line
               for line in lines)
    assert "108 train / 12 validation texts" in lines  # both folder levels read


def test_packing_has_end_of_text_separators_and_no_padding():
    tokenizer = train_tokenizer(["a b c", "d e"], model="word", vocab_size=20)
    stream = token_stream(tokenizer, ["a b c", "d e", "a"])
    eot = tokenizer.vocab_size
    assert stream.tolist().count(eot) == 3 and stream[-1] == eot and 0 not in stream
    assert stream.tolist().index(eot) == 3
    inputs, targets = pack_windows(stream, 3, "training")
    assert inputs.shape == targets.shape == ((len(stream) - 1) // 3, 3)
    np.testing.assert_array_equal(inputs.reshape(-1)[1:], targets.reshape(-1)[:-1])
    np.testing.assert_array_equal(inputs.reshape(-1), stream[:inputs.size])


def test_too_little_text_for_one_window_is_a_clear_error():
    with pytest.raises(DataError, match="one window needs max_len \\+ 1 = 17"):
        pack_windows(np.arange(1, 17), 16, "validation")


def test_unigram_perplexity_of_a_uniform_stream():
    targets = np.tile(np.arange(1, 5), 50)  # ids 1..4 equally often, vocab of 5 (0: padding)
    assert unigram_perplexity(targets, targets, 5) == pytest.approx(4.0)


def test_texts_are_read_one_per_line_and_from_csv_and_jsonl(tmp_path):
    lines = tmp_path / "texts.txt"
    lines.write_bytes("one\u2028still one\r\ntwo\n\n  \nthree".encode())
    assert load_lm_texts(lines) == ["one\u2028still one", "two", "three"]
    table = tmp_path / "texts.csv"
    table.write_text('body,other\n"a, b",1\nc,2\n', encoding="utf-8")
    assert load_lm_texts(table, text_column="body") == ["a, b", "c"]
    records = tmp_path / "texts.jsonl"
    records.write_text('{"t": "x"}\n\n{"t": "y\\u2028z"}\n', encoding="utf-8")
    assert load_lm_texts(records, text_column="t") == ["x", "y\u2028z"]


def test_validation_split_keeps_whole_texts_apart():
    texts = [f"text {i}" for i in range(20)]
    train, validation = split_texts(texts, 0.2, seed=1)
    assert len(validation) == 4 and sorted(train + validation) == sorted(texts)
    assert split_texts(texts, 0.2, seed=1) == (train, validation)


@pytest.mark.parametrize("make, flags, message", [
    (lambda p: p / "missing", [], "does not exist"),
    (lambda p: _write(p / "x.parquet", "a"), [], "Unsupported data file extension"),
    (lambda p: _write(p / "x.txt", "\n \n"), [], "every text is empty"),
    (lambda p: _write(p / "x.txt", "only one text"), [], "at least two texts"),
    (lambda p: _write(p / "x.txt", "a b\nc d\n"), [], "one window needs max_len"),
    (lambda p: _write(p / "x.csv", "body\nhello\n"), [],
     "Missing the column(s) ['text'] (set --text-column to"),
    (lambda p: _write(p / "x.jsonl", '{"text": 3}\n'), [],
     "The text must be a string. Received: int at line 1"),
    (lambda p: p.joinpath("x.txt").write_bytes(b"caf\xe9\n") and p / "x.txt", [], "UTF-8"),
    (lambda p: _write(p / "x.txt", "a\nb\n"), ["--validation-split", "1.5"], "strictly"),
    (lambda p: _write(p / "x.txt", "a\nb\n"), ["--d-model", "15"], "divisible"),
    (lambda p: _write(p / "x.txt", "a\nb\n"), ["--attention-dropout", "1.5"],
     "expected a rate in [0, 1). Received: --attention-dropout 1.5"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, make, flags, message):
    data = make(tmp_path)
    out = tmp_path / "run"
    code = main(["train-lm", "--data", str(data), "--out", str(out), "--epochs", "1", *TINY,
                 *flags])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    train, validation = split_texts(_fortunes(200), 0.2, seed=0)
    run = tmp_path / "run"
    with pytest.raises(SimulatedKillError):
        train_language_model(train, validation, SETTINGS, run, data_description="d",
                             callbacks=[InterruptAfterEpoch(1)], verbose=0)
    assert (run / "backup").is_dir() and not (run / "config.json").exists()
    saved_tokenizer = (run / "tokenizer.json").read_text("utf-8")
    resumed = train_language_model(train, validation, SETTINGS, run, data_description="d",
                                   verbose=0)
    assert resumed.resumed_from_epoch == 2
    assert [int(epoch) for epoch in resumed.history["epoch"]] == [0, 1, 2]
    assert resumed.tokenizer.to_str() == saved_tokenizer
    assert resumed.validation_loss == pytest.approx(min(resumed.history["val_loss"]), rel=1e-4)
    assert not (run / "backup").exists()


def test_generate_on_a_run_folder_prints_the_prompt_and_its_continuation(trained, capsys):
    assert main(["generate", str(trained / "run"), "The computer", "--max-new-tokens",
                 "6"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("The computer") and len(out[0]) > len("The computer")


def test_generate_keras_and_onnxruntime_agree_greedy_and_seeded(trained, capsys):
    version = str(trained / "saved_models" / "lm" / "1")
    for flags in ([], ["--temperature", "0.9", "--top-k", "20", "--seed", "5"],
                  ["--no-repeat-ngram-size", "2", "--repetition-penalty", "1.3"]):
        results = []
        for model in (str(trained / "run"), version):
            assert main(["generate", model, "the law", "--max-new-tokens", "8", "--json",
                         *flags]) == 0
            results.append(json.loads(capsys.readouterr().out))
        assert [r["engine"] for r in results] == ["keras", "onnxruntime"]
        assert results[0]["new_ids"] == results[1]["new_ids"]
        assert results[0]["text"] == results[1]["text"]


def test_generate_on_an_export_never_imports_tensorflow(trained):
    code = BLOCK_IMPORTS + (
        "from keras_attn.cli.main import main\n"
        "assert main(['generate', sys.argv[2], 'the law', '--max-new-tokens', '5']) == 0\n"
        "assert not any(m.split('.')[0] in BLOCKED for m in sys.modules), 'imported'\n")
    result = run_python(code, "tensorflow,keras,tf2onnx",
                        str(trained / "saved_models" / "lm" / "1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the law")


@pytest.mark.parametrize("flags, message", [
    (["--max-new-tokens", "-1"], "--max-new-tokens -1"),
    (["--temperature", "-1"], "--temperature -1"),
    (["--top-k", "5"], "--temperature 0 (greedy)"),
    (["--temperature", "1", "--top-p", "2"], "--top-p 2"),
    (["--repetition-penalty", "0"], "--repetition-penalty must be a finite number > 0"),
    (["--seed", "-1"], "--seed must be an integer >= 0 or None. Received: --seed -1"),
    (["--no-repeat-ngram-size", "-2"], "--no-repeat-ngram-size must be an integer >= 0"),
])
def test_generate_bad_flags_exit_2(trained, capsys, flags, message):
    assert main(["generate", str(trained / "run"), "the", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "---" not in err, err  # each name is its flag, once


def test_generate_refuses_a_folder_without_a_model(tmp_path, capsys):
    assert main(["generate", str(tmp_path), "the"]) == 2
    assert "Expected a train-lm run folder" in capsys.readouterr().err


def test_the_export_ships_a_decoder_step_that_verify_checks(trained, capsys):
    version = trained / "saved_models" / "lm" / "1"
    manifest = json.loads((version / "manifest.json").read_text())
    assert "decoder.onnx" in manifest["files"]
    decoder = manifest["decoder"]
    assert decoder["parity"]["ok"] and decoder["parity"]["greedy_tokens_equal"]
    assert decoder["inputs"]["past_key_values.0.key"] == ["batch", 2, "past", 8]
    assert main(["verify", str(version)]) == 0
    out = capsys.readouterr().out
    assert "decoder steps: " in out and "savedmodel decoder" in out
    assert ("greedy tokens Keras == onnxruntime == onnxruntime optimized == SavedModel: True; "
            "pass") in out


def test_cached_and_recomputed_onnx_generation_agree(trained):
    from export.runtime.decoder_step import CachedStep
    from export.runtime.generation import RecomputeStep, generate_from_export, load_step

    version = trained / "saved_models" / "lm" / "1"
    assert isinstance(load_step(version), CachedStep)
    assert isinstance(load_step(version, cached=False), RecomputeStep)
    for sampling in ({}, {"temperature": 1.0, "top_p": 0.9, "seed": 2}):
        cached = generate_from_export(version, "the law", 10, **sampling)
        recomputed = generate_from_export(version, "the law", 10, cached=False, **sampling)
        assert cached.new_ids == recomputed.new_ids


def test_verify_fails_on_a_changed_decoder(trained, tmp_path, capsys):
    import shutil

    copy = tmp_path / "1"
    shutil.copytree(trained / "saved_models" / "lm" / "1", copy)
    with open(copy / "decoder.onnx", "ab") as file:
        file.write(b"\0")
    assert main(["verify", str(copy)]) == 1
    assert "decoder.onnx: changed" in capsys.readouterr().out


@pytest.mark.parametrize("setting, message", [
    ({"pooling": "first"}, "pooling is a classifier's readout"),
    ({"monitor": "val_accuracy"}, "keeps the epoch of the lowest val_loss"),
])
def test_classifier_only_settings_are_refused_before_anything_is_written(tmp_path, setting,
                                                                         message):
    import dataclasses

    with pytest.raises(ValueError, match=message):
        train_language_model(["the dog ran"] * 20, ["the cat sat"] * 5,
                             dataclasses.replace(SETTINGS, **setting), tmp_path / "run")
    assert not (tmp_path / "run").exists()
