"""`keras-attn triton-repo`: a model folder's versions as a Triton Inference Server model repository.

    REPO/NAME/config.pbtxt        platform "onnxruntime_onnx", max_batch_size, token_ids, logits,
                                  dynamic_batching, every version served
    REPO/NAME/labels.txt          the class names, one per line (classifiers exported with names)
    REPO/NAME/<version>/model.onnx    model.onnx of each version (standard ONNX ops only)

Triton adds the batch dimension itself when max_batch_size > 0, so `token_ids` has dims [-1]
(the sequence) and a classifier's `logits` [num_classes]. Triton serves token ids: text is
tokenized by the client, or by `keras-attn serve`. Dynamic batching here is Triton's own
(`dynamic_batching { max_queue_delay_microseconds }`), across the server's model instances.

The repository is written to a temporary folder beside REPO/NAME and renamed into place.
Reads the ONNX files with `onnx` (an export-side dependency; Triton needs nothing from here).

Reference: https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/user_guide/model_configuration.html
"""  # noqa: E501

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from export.artifact.manifest import ONNX_FILENAME
from export.artifact.metadata import INPUT_NAME, OUTPUT_NAME
from export.artifact.versions import existing_versions

CONFIG_FILENAME = "config.pbtxt"
LABELS_FILENAME = "labels.txt"
# ONNX TensorProto element types -> Triton's DataType names (model_config.proto).
TRITON_TYPES = {1: "TYPE_FP32", 6: "TYPE_INT32", 7: "TYPE_INT64", 10: "TYPE_FP16"}


def _io_of(onnx_path: Path) -> dict[str, tuple[str, list[int]]]:
    """name -> (Triton data type, dims without the batch dimension) of the model's inputs and
    outputs; a named (dynamic) dimension is -1."""
    import onnx

    graph = onnx.load(onnx_path, load_external_data=False).graph
    io = {}
    for value in [*graph.input, *graph.output]:
        tensor = value.type.tensor_type
        if tensor.elem_type not in TRITON_TYPES:
            raise ValueError(f"{onnx_path}: {value.name} has ONNX element type "
                             f"{tensor.elem_type}, which this writer does not map to Triton")
        dims = [dim.dim_value if dim.dim_value > 0 else -1 for dim in tensor.shape.dim]
        io[value.name] = (TRITON_TYPES[tensor.elem_type], dims[1:])
    return io


def _class_names(onnx_path: Path) -> list[str] | None:
    import onnx

    from export.artifact.metadata import decode_metadata

    model = onnx.load(onnx_path, load_external_data=False)
    return decode_metadata({prop.key: prop.value for prop in model.metadata_props}).get(
        "class_names")


def config_text(name: str, io: dict[str, tuple[str, list[int]]], max_batch_size: int,
                max_queue_delay_us: int, labels: bool) -> str:
    """The config.pbtxt (protobuf text format of Triton's ModelConfig)."""

    def tensor(tensor_name: str, extra: str = "") -> str:
        data_type, dims = io[tensor_name]
        return (f"  {{\n    name: \"{tensor_name}\"\n    data_type: {data_type}\n"
                f"    dims: [ {', '.join(map(str, dims))} ]\n{extra}  }}")

    label_line = f"    label_filename: \"{LABELS_FILENAME}\"\n" if labels else ""
    return (f"name: \"{name}\"\n"
            "platform: \"onnxruntime_onnx\"\n"
            f"max_batch_size: {max_batch_size}\n"
            f"input [\n{tensor(INPUT_NAME)}\n]\n"
            f"output [\n{tensor(OUTPUT_NAME, label_line)}\n]\n"
            "version_policy: { all { } }\n"
            f"dynamic_batching {{\n  max_queue_delay_microseconds: {max_queue_delay_us}\n}}\n")


def write_triton_repository(model_root: str | os.PathLike, out: str | os.PathLike,
                            max_batch_size: int = 32, max_queue_delay_us: int = 100) -> Path:
    """Writes REPO/NAME (NAME: the model folder's name) for every version of `model_root`.

    Args:
        model_root: the model folder, e.g. "saved_models/demo", holding numbered versions.
        out: the repository folder (created if missing); other models in it are kept.
        max_batch_size: the largest batch Triton's dynamic batcher forms (> 0).
        max_queue_delay_us: how long Triton may hold a request to batch it with others.

    Returns:
        The model's folder, REPO/NAME.

    Raises:
        FileNotFoundError: no numbered version with a model.onnx in `model_root`.
        FileExistsError: REPO/NAME exists already (it is never overwritten).
        ValueError: bad settings, or versions whose inputs/outputs differ (one config.pbtxt
            serves them all).
    """
    for flag, value, low in (("max_batch_size", max_batch_size, 1),
                             ("max_queue_delay_us", max_queue_delay_us, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{flag} must be an integer >= {low}. Received: {flag}={value!r}")
    model_root = Path(model_root)
    name = model_root.resolve().name
    versions = existing_versions(model_root)
    files = {version: model_root / str(version) / ONNX_FILENAME for version in versions}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if not versions or missing:
        raise FileNotFoundError(
            f"Expected a model folder whose numbered versions each hold {ONNX_FILENAME}, e.g. "
            f"saved_models/demo. Received: {str(model_root)!r}"
            + (f", missing {missing}" if missing else ", with no numbered version"))
    target = Path(out) / name
    if target.exists():
        raise FileExistsError(f"{target} exists already; remove it or choose another --out. "
                              f"Received: --out {out}")
    io_by_version = {version: _io_of(path) for version, path in files.items()}
    io = io_by_version[versions[-1]]
    differing = [version for version, other in io_by_version.items() if other != io]
    if differing:
        raise ValueError(f"One config.pbtxt serves every version, but versions {differing} "
                         f"have other inputs/outputs than version {versions[-1]}: {io}")
    class_names = _class_names(files[versions[-1]])
    staging = target.parent / f".staging-{name}-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        (staging / CONFIG_FILENAME).write_text(
            config_text(name, io, max_batch_size, max_queue_delay_us, class_names is not None))
        if class_names is not None:
            (staging / LABELS_FILENAME).write_text("\n".join(class_names) + "\n")
        for version, path in files.items():
            (staging / str(version)).mkdir()
            shutil.copyfile(path, staging / str(version) / ONNX_FILENAME)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
