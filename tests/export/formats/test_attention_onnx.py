"""attention.onnx: every export answers each block's attention weights in onnxruntime, equal to
Keras's `return_attention_scores` on the parity battery, checked at export and by `verify`, and a
graph that disagrees is left out saying why."""

import json

import numpy as np
import onnx
import pytest
from export_cases import CASES, CLASSIFIER, LANGUAGE_MODEL, build_model, exported

import export.formats.attention_onnx
from export import export_model, verify
from export.artifact.manifest import ATTENTION_FILENAME
from export.runtime.attention import load_attention
from keras_attn.models.attention_maps import attention_maps

RAGGED = np.array([[5, 9, 3, 7, 2], [4, 0, 0, 0, 0], [8, 6, 0, 0, 0]], np.int32)


# Both kinds, both norm placements, one and two blocks (every export runs this same check).
CHECKED = (CLASSIFIER, LANGUAGE_MODEL, "classifier-gelu_tanh-pre-2layers",
           "language_model-gelu-post-2layers")


@pytest.mark.parametrize("name", CHECKED)
def test_every_export_ships_attention_equal_to_keras(name):
    model, result = exported(name)
    assert result.attention_path == result.path / ATTENTION_FILENAME
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    entry = manifest["attention"]
    assert entry["shipped"] and entry["parity"]["ok"] and entry["parity"]["cases"] == 20
    assert ATTENTION_FILENAME in manifest["files"]
    blocks = CASES[name].num_layers
    assert entry["outputs"] == [f"attentions.{block}" for block in range(blocks)]
    got = load_attention(result.path).maps(RAGGED)
    want = attention_maps(model, RAGGED)
    assert len(got) == len(want) == blocks
    for ours, keras_weights in zip(got, want, strict=True):
        assert ours.shape == (3, 2, 5, 5) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, keras_weights, rtol=0, atol=1e-6)
        np.testing.assert_allclose(ours.sum(-1), 1.0, rtol=0, atol=1e-6)
        assert np.all(ours[1, :, :, 1:] == 0) and np.all(ours[2, :, :, 2:] == 0)  # padding


def test_the_file_names_its_dims_and_keeps_the_metadata():
    _, result = exported(LANGUAGE_MODEL)
    proto = onnx.load(result.attention_path)
    (output,) = proto.graph.output
    dims = [dim.dim_param or dim.dim_value for dim in output.type.tensor_type.shape.dim]
    assert (output.name, dims) == ("attentions.0", ["batch", 2, "sequence", "key_sequence"])
    portable = {prop.key: prop.value for prop in onnx.load(result.onnx_path).metadata_props}
    assert {prop.key: prop.value for prop in proto.metadata_props} == portable
    causal = load_attention(result.path).maps(RAGGED[:1])[0][0]
    assert np.all(np.triu(causal, k=1) == 0)  # a language model attends only backwards


def swapped_blocks(original):
    """convert_attention with the graph's outputs listed block 1 first: a graph that runs and
    answers block 1's weights as block 0's."""

    def convert(model, metadata, opset):
        proto = original(model, metadata, opset)
        outputs = list(proto.graph.output)
        del proto.graph.output[:]
        proto.graph.output.extend(reversed(outputs))
        return proto

    return convert


def test_attention_that_disagrees_with_keras_is_left_out_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(export.formats.attention_onnx, "convert_attention",
                        swapped_blocks(export.formats.attention_onnx.convert_attention))
    model = build_model("classifier-gelu_tanh-pre-2layers")
    with pytest.warns(RuntimeWarning, match=f"{ATTENTION_FILENAME} is not shipped: failed its "
                                            "parity check: attention.onnx: every block's"):
        result = export_model(model, tmp_path / "model")
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert not manifest["attention"]["shipped"] and "FAIL" in manifest["attention"]["reason"]
    assert result.attention_path is None and not (result.path / ATTENTION_FILENAME).exists()
    assert verify(result.path).ok  # the rest of the export is whole
    with pytest.raises(FileNotFoundError, match="it was not shipped: failed its parity check"):
        load_attention(result.path)


def test_verify_checks_attention_and_prints_it():
    _, result = exported(CLASSIFIER)
    report = verify(result.path)
    assert report.ok and report.attention["ok"]
    assert "attention.onnx: every block's attention weights on 20 battery cases vs Keras: " \
           "onnxruntime (basic)" in report.table()
