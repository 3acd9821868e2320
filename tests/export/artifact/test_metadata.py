"""export/artifact/metadata.py: the ONNX metadata_props, written as strings and read back typed."""

import pytest

from export.artifact.metadata import decode_metadata, encode_metadata

CONFIG = {"vocab_size": 50, "max_len": 16, "d_model": 16, "activation": "gelu"}


def test_round_trip_restores_types():
    props = encode_metadata(CONFIG, "classifier", 17, "0.1.0", ["neg", "pos"])
    assert all(isinstance(value, str) for value in props.values())
    assert decode_metadata(props) == {
        "task": "classifier", "config": CONFIG, "max_len": 16, "vocab_size": 50, "opset": 17,
        "keras_attn_version": "0.1.0", "class_names": ["neg", "pos"],
        "input_name": "token_ids", "output_name": "logits",
    }
    assert decode_metadata(encode_metadata(CONFIG, "language_model", 18, "x"))["class_names"] \
        is None


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match=r"task must be one of .*task='regressor'"):
        encode_metadata(CONFIG, "regressor", 17, "0.1.0")


def test_foreign_metadata_names_the_missing_keys():
    with pytest.raises(ValueError, match=r"lacks the keras-attn metadata \['config', 'max_len'"):
        decode_metadata({"task": "classifier", "vocab_size": "5", "producer": "someone"})
