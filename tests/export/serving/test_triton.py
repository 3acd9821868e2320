"""export/serving/triton.py and `keras-attn triton-repo`: the repository's config.pbtxt parses into
Triton's own ModelConfig protobuf (tritonclient.grpc.model_config_pb2) and says what the ONNX
files hold; every version's model.onnx is there, byte for byte."""

from __future__ import annotations

import shutil

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export.serving.triton import config_text, write_triton_repository
from keras_attn.cli.main import main
from tests.export_cases import CLASSIFIER, LANGUAGE_MODEL, copy_version, exported


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
    assert "no numbered version" in capsys.readouterr().err
    assert sorted(path.name for path in out.iterdir()) == ["sentiment"]  # no staging left
