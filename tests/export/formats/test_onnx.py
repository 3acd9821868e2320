"""export/formats/onnx.py: the ONNX model's names, dims, opset and metadata are exactly as
specified."""

import json

import onnx
import pytest
from export_cases import CASES, CLASSIFIER, LANGUAGE_MODEL, build_model, case_config, exported
from onnx import TensorProto, helper

from export.formats.onnx import OPSET, convert_to_onnx, name_dims


def dims(value):
    return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]


def load(name):
    return onnx.load(exported(name)[1].onnx_path)


@pytest.mark.parametrize("name, logits_dims", [
    (CLASSIFIER, ["batch", 3]),
    (LANGUAGE_MODEL, ["batch", "sequence", 50]),
])
def test_input_and_output_names_and_dims(name, logits_dims):
    graph = load(name).graph
    assert [value.name for value in graph.input] == ["token_ids"]
    assert [value.name for value in graph.output] == ["logits"]
    (token_ids,), (logits,) = graph.input, graph.output
    assert token_ids.type.tensor_type.elem_type == TensorProto.INT32
    assert dims(token_ids) == ["batch", "sequence"]
    assert logits.type.tensor_type.elem_type == TensorProto.FLOAT
    assert dims(logits) == logits_dims


@pytest.mark.parametrize("name", sorted(CASES))
def test_opset_is_pinned_and_graph_is_clean(name):
    proto = load(name)
    assert {entry.domain: entry.version for entry in proto.opset_import}[""] == OPSET == 17
    op_types = {node.op_type for node in proto.graph.node}
    assert not op_types & {"Erfc", "Assert"}  # Erfc does not convert; asserts stay in TF
    assert not [value.name for value in [*proto.graph.input, *proto.graph.output]
                if any(str(d).startswith("unk__") for d in dims(value))]
    onnx.checker.check_model(proto, full_check=True)


def test_exact_gelu_is_exported_as_erf():
    assert "Erf" in {node.op_type for node in load("classifier-gelu-pre").graph.node}


@pytest.mark.parametrize("name, task", [(CLASSIFIER, "classifier"),
                                        (LANGUAGE_MODEL, "language_model")])
def test_metadata_holds_config_limits_versions(name, task):
    props = {prop.key: prop.value for prop in load(name).metadata_props}
    config = case_config(name).to_dict()
    if task == "language_model":  # it classifies every position over the vocabulary
        config["num_classes"] = config["vocab_size"]
    assert json.loads(props["config"]) == config
    assert props["task"] == task
    assert (props["max_len"], props["vocab_size"], props["opset"]) == ("16", "50", "17")
    assert props["keras_attn_version"] == "0.1.0"
    assert json.loads(props["class_names"]) is None


def test_opset_outside_17_18_is_refused():
    model = build_model(CLASSIFIER)
    with pytest.raises(ValueError, match=r"opset must be one of \(17, 18\).*opset=13"):
        convert_to_onnx(model, "classifier", {}, opset=13)


def test_opset_18_converts_with_named_dims():
    model = build_model(CLASSIFIER)
    proto = convert_to_onnx(model, "classifier", {"task": "classifier"}, opset=18)
    assert {entry.domain: entry.version for entry in proto.opset_import}[""] == 18
    assert dims(proto.graph.input[0]) == ["batch", "sequence"]


def _identity_graph(input_dims, output_dims):
    """token_ids -> Identity -> logits, with the given symbolic dims."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["token_ids"], ["logits"])], "g",
        [helper.make_tensor_value_info("token_ids", TensorProto.INT32, input_dims)],
        [helper.make_tensor_value_info("logits", TensorProto.INT32, output_dims)],
        value_info=[helper.make_tensor_value_info("inner", TensorProto.INT32, ["unk__1"])],
    )
    return helper.make_model(graph)


def test_name_dims_renames_the_symbol_everywhere():
    proto = _identity_graph(["unk__1", "unk__2"], ["unk__3", "unk__2"])
    name_dims(proto, {"token_ids": ("batch", "sequence"), "logits": ("batch",)})
    assert dims(proto.graph.input[0]) == ["batch", "sequence"]
    assert dims(proto.graph.output[0]) == ["batch", "sequence"]
    assert dims(proto.graph.value_info[0]) == ["batch"]


def test_name_dims_refuses_leftover_unk_dims_and_missing_names():
    with pytest.raises(ValueError, match=r"logits\[1\]=unk__9"):
        name_dims(_identity_graph(["unk__1", "unk__2"], ["unk__3", "unk__9"]),
                  {"token_ids": ("batch", "sequence"), "logits": ("batch",)})
    with pytest.raises(ValueError, match="no input or output named 'ids'"):
        name_dims(_identity_graph(["a"], ["a"]), {"ids": ("batch",)})
