"""export/serving/triton.py and `keras-attn triton-repo`: the repository's config.pbtxt files parse
into Triton's own ModelConfig protobuf (tritonclient.grpc.model_config_pb2) and say what the
ONNX files hold; every version's files are there, byte for byte. A real server serves them in
test_triton_server.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export import runtime
from export.serving import triton_text_model
from export.serving.triton import config_text, write_text_model, write_triton_repository
from keras_attn.cli.main import main
from tests.export_cases import CLASSIFIER, LANGUAGE_MODEL, copy_version, exported
from tests.repo_paths import FIXTURES

LANGUAGES = FIXTURES / "version_folders" / "languages" / "1"  # a classifier of 12 languages


def parse(path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def classifier_root(tmp_path_factory):
    """The CLASSIFIER case's model folder with a second version (a copy of the first)."""
    root = copy_version(CLASSIFIER, tmp_path_factory.mktemp("triton") / "sentiment")
    shutil.copytree(root / "1", root / "2")
    return root


def test_classifier_repository(classifier_root, tmp_path):
    folder = write_triton_repository(classifier_root, tmp_path / "repo", max_batch_size=16,
                                     max_queue_delay_us=250)
    assert folder == tmp_path / "repo" / "sentiment"
    config = parse(folder / "config.pbtxt")
    assert config.name == "sentiment" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 16
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    assert config.version_policy.WhichOneof("policy_choice") == "all"
    (token_ids,) = config.input
    assert (token_ids.name, token_ids.data_type, list(token_ids.dims)) == (
        "token_ids", model_config_pb2.TYPE_INT32, [-1])
    (logits,) = config.output
    assert (logits.name, logits.data_type, list(logits.dims)) == (
        "logits", model_config_pb2.TYPE_FP32, [3])
    assert not (folder / "labels.txt").exists()  # exported without class names
    for version in ("1", "2"):
        copied = folder / version / "model.onnx"
        assert copied.read_bytes() == (classifier_root / version / "model.onnx").read_bytes()
    # What the config says is what onnxruntime (Triton's backend) finds in the file.
    session = ort.InferenceSession(str(folder / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(int32)"
    logits_out = session.run(None, {"token_ids": np.array([[4, 5, 6]], np.int32)})[0]
    assert logits_out.shape == (1, 3)


def test_language_model_logits_have_two_dims():
    _, result = exported(LANGUAGE_MODEL)
    config_dir = write_triton_repository(result.path.parent, result.path.parent.parent / "lm-repo")
    try:
        (logits,) = parse(config_dir / "config.pbtxt").output
        assert list(logits.dims) == [-1, 50]  # [sequence, vocab_size] after the batch
    finally:
        shutil.rmtree(config_dir.parent)


def test_labels_file_is_named_in_the_config():
    io = {"token_ids": ("TYPE_INT64", [-1]), "logits": ("TYPE_FP32", [2])}
    config = text_format.Parse(config_text("m", io, 8, 0, labels=True),
                               model_config_pb2.ModelConfig())
    assert config.output[0].label_filename == "labels.txt"
    assert config.input[0].data_type == model_config_pb2.TYPE_INT64


def test_cli_writes_the_repository_and_refuses_to_overwrite(classifier_root, tmp_path, capsys):
    out = tmp_path / "models"
    assert main(["triton-repo", str(classifier_root), "--out", str(out)]) == 0
    assert "versions [1, 2]" in capsys.readouterr().out
    assert parse(out / "sentiment" / "config.pbtxt").max_batch_size == 32
    assert main(["triton-repo", str(classifier_root), "--out", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["triton-repo", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "The model folder does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["triton-repo", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "no numbered version" in capsys.readouterr().err
    assert main(["triton-repo", str(classifier_root / "1"), "--out", str(out)]) == 2
    assert "is an export version folder; triton-repo takes the model folder" in \
        capsys.readouterr().err
    assert main(["triton-repo", str(classifier_root), "--out", str(out / "x"),
                 "--max-queue-delay-us", "-1"]) == 2
    assert "--max-queue-delay-us must be an integer >= 0" in capsys.readouterr().err
    assert sorted(path.name for path in out.iterdir()) == ["sentiment"]  # no staging left


def test_the_text_model_is_written_beside_the_token_ids_model(tmp_path):
    """REPO/NAME_text: the Python-backend model, each version with model.py, its ONNX file,
    its tokenizer and its settings; config.pbtxt parses into Triton's ModelConfig."""
    root = tmp_path / "languages"
    (root / "1").mkdir(parents=True)
    for name in ("model.onnx", "tokenizer.json", "manifest.json"):
        shutil.copyfile(LANGUAGES / name, root / "1" / name)
    folder = write_text_model(root, tmp_path / "repo", max_batch_size=8, max_queue_delay_us=50)
    assert folder == tmp_path / "repo" / "languages_text"
    config = parse(folder / "config.pbtxt")
    assert (config.name, config.backend, config.max_batch_size) == ("languages_text", "python", 8)
    assert config.dynamic_batching.max_queue_delay_microseconds == 50
    (text,) = config.input
    assert (text.name, text.data_type, list(text.dims)) == ("text", model_config_pb2.TYPE_STRING,
                                                            [1])
    assert {(o.name, o.data_type, tuple(o.dims)) for o in config.output} == {
        ("logits", model_config_pb2.TYPE_FP32, (12,)),
        ("probabilities", model_config_pb2.TYPE_FP32, (12,)),
        ("label", model_config_pb2.TYPE_STRING, (1,))}
    version = folder / "1"
    assert (version / "model.py").read_text() == triton_text_model.__loader__.get_data(
        triton_text_model.__file__).decode()
    for name in ("model.onnx", "tokenizer.json"):
        assert (version / name).read_bytes() == (LANGUAGES / name).read_bytes()
    settings = json.loads((version / "text_model.json").read_text(encoding="utf-8"))
    assert settings["max_len"] == runtime.load(LANGUAGES).max_len
    assert settings["class_names"] == runtime.load(LANGUAGES).class_names
    with pytest.raises(FileExistsError, match="exists already"):
        write_text_model(root, tmp_path / "repo")


def test_a_language_model_gets_no_text_model_and_the_cli_says_why(tmp_path, capsys):
    _, result = exported(LANGUAGE_MODEL)
    with pytest.raises(ValueError, match="serves classifiers exported with class names"):
        write_text_model(result.path.parent, tmp_path / "repo")
    assert main(["triton-repo", str(result.path.parent), "--out", str(tmp_path / "r")]) == 0
    assert "no text model: The text model serves classifiers" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [result.path.parent.name]
