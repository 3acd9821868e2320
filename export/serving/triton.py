"""`keras-attn triton-repo`: a model folder's versions as a Triton Inference Server model repository.

    REPO/NAME/config.pbtxt        platform "onnxruntime_onnx", max_batch_size, token_ids, logits,
                                  dynamic_batching, every version served
    REPO/NAME/labels.txt          the class names, one per line (classifiers exported with names)
    REPO/NAME/<version>/model.onnx    model.onnx of each version (standard ONNX ops only)

    REPO/NAME_text/config.pbtxt   backend "python": text in; logits, probabilities, label out
    REPO/NAME_text/<version>/     model.py (export/serving/triton_text_model.py), model.onnx,
                                  tokenizer.json, text_model.json (max_len, class names)

Triton adds the batch dimension itself when max_batch_size > 0, so `token_ids` has dims [-1]
(the sequence) and a classifier's `logits` [num_classes]. NAME serves token ids (text is
tokenized by the client) on Triton's onnxruntime backend, the one GPU and CPU Triton builds
ship. NAME_text (classifiers only) tokenizes inside the server, on Triton's Python backend,
with numpy, onnxruntime and tokenizers in the Python that runs it. Dynamic batching is Triton's
own (`dynamic_batching { max_queue_delay_microseconds }`).

Each model is written to a temporary folder beside it and renamed into place.
Reads the ONNX files with `onnx` (an export-side dependency; Triton needs nothing from here).

Reference: https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/user_guide/model_configuration.html
"""  # noqa: E501

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from export.artifact.manifest import ONNX_FILENAME, TOKENIZER_FILENAME
from export.artifact.metadata import INPUT_NAME, OUTPUT_NAME
from export.artifact.versions import existing_versions
from export.serving.triton_text_model import LABEL, PROBABILITIES, SETTINGS_FILENAME, TEXT_INPUT

CONFIG_FILENAME = "config.pbtxt"
LABELS_FILENAME = "labels.txt"
# ONNX TensorProto element types -> Triton's DataType names (model_config.proto).
TEXT_MODEL_SUFFIX = "_text"  # REPO/NAME_text: the Python-backend model that takes text
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


def _check_batching(max_batch_size: int, max_queue_delay_us: int) -> None:
    """Raises ValueError unless max_batch_size >= 1 and max_queue_delay_us >= 0 (integers)."""
    for flag, value, low in (("max_batch_size", max_batch_size, 1),
                             ("max_queue_delay_us", max_queue_delay_us, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{flag} must be an integer >= {low}. Received: {flag}={value!r}")


def _onnx_files(model_root: Path) -> dict[int, Path]:
    """version -> its model.onnx, for every numbered version of `model_root`, oldest first.

    Raises:
        FileNotFoundError: no numbered version, or one without model.onnx.
    """
    files = {version: model_root / str(version) / ONNX_FILENAME
             for version in existing_versions(model_root)}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if not files or missing:
        raise FileNotFoundError(
            f"Expected a model folder whose numbered versions each hold {ONNX_FILENAME}, e.g. "
            f"saved_models/demo. Received: {str(model_root)!r}"
            + (f", missing {missing}" if missing else ", with no numbered version"))
    return files


def _metadata(onnx_path: Path) -> dict:
    """The export's metadata in the ONNX file (max_len, vocab_size, class_names, ...)."""
    import onnx

    from export.artifact.metadata import decode_metadata

    model = onnx.load(onnx_path, load_external_data=False)
    return decode_metadata({prop.key: prop.value for prop in model.metadata_props})


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
    _check_batching(max_batch_size, max_queue_delay_us)
    model_root = Path(model_root)
    name = model_root.resolve().name
    files = _onnx_files(model_root)
    versions = list(files)
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
    class_names = _metadata(files[versions[-1]]).get("class_names")
    with _staged(target) as staging:
        (staging / CONFIG_FILENAME).write_text(
            config_text(name, io, max_batch_size, max_queue_delay_us, class_names is not None))
        if class_names is not None:
            (staging / LABELS_FILENAME).write_text("\n".join(class_names) + "\n")
        for version, path in files.items():
            (staging / str(version)).mkdir()
            shutil.copyfile(path, staging / str(version) / ONNX_FILENAME)
    return target


def text_model_config(name: str, num_classes: int, max_batch_size: int,
                      max_queue_delay_us: int) -> str:
    """The config.pbtxt of the Python-backend text model (export/serving/triton_text_model.py):
    `text` BYTES in; `logits`, `probabilities` FP32 `[num_classes]` and `label` BYTES `[1]`
    out (after the batch dimension); one CPU instance, Triton's dynamic batcher."""
    return (f"name: \"{name}\"\n"
            "backend: \"python\"\n"
            f"max_batch_size: {max_batch_size}\n"
            f"input [\n  {{ name: \"{TEXT_INPUT}\" data_type: TYPE_STRING dims: [ 1 ] }}\n]\n"
            "output [\n"
            f"  {{ name: \"{OUTPUT_NAME}\" data_type: TYPE_FP32 dims: [ {num_classes} ] }},\n"
            f"  {{ name: \"{PROBABILITIES}\" data_type: TYPE_FP32 dims: [ {num_classes} ] }},\n"
            f"  {{ name: \"{LABEL}\" data_type: TYPE_STRING dims: [ 1 ] }}\n]\n"
            "version_policy: { all { } }\n"
            "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
            f"dynamic_batching {{\n  max_queue_delay_microseconds: {max_queue_delay_us}\n}}\n")


def write_text_model(model_root: str | os.PathLike, out: str | os.PathLike,
                     max_batch_size: int = 32, max_queue_delay_us: int = 100) -> Path:
    """Writes REPO/NAME_text: the classifier's versions as a Triton Python-backend model that
    takes text and tokenizes inside the server (export/serving/triton_text_model.py).

    Each version folder gets `model.py` (that module), the export's `model.onnx` and
    `tokenizer.json`, and `text_model.json` with that version's max_len and class names.

    Args:
        model_root, out, max_batch_size, max_queue_delay_us: as `write_triton_repository`.

    Returns:
        The model's folder, REPO/NAME_text.

    Raises:
        FileNotFoundError: as `write_triton_repository`.
        FileExistsError: REPO/NAME_text exists already (it is never overwritten).
        ValueError: bad settings, or a version that is not a classifier with class names and a
            tokenizer.json (a language model, or an export without them), saying which.
    """
    _check_batching(max_batch_size, max_queue_delay_us)
    model_root = Path(model_root)
    files = _onnx_files(model_root)
    name = f"{model_root.resolve().name}{TEXT_MODEL_SUFFIX}"
    target = Path(out) / name
    if target.exists():
        raise FileExistsError(f"{target} exists already; remove it or choose another --out. "
                              f"Received: --out {out}")
    settings = {}
    for version, path in files.items():
        metadata = _metadata(path)
        tokenizer = path.parent / TOKENIZER_FILENAME
        if not metadata.get("class_names") or not tokenizer.is_file():
            raise ValueError(f"The text model serves classifiers exported with class names "
                             f"and {TOKENIZER_FILENAME}; version {version} of {model_root} is "
                             f"a {metadata['task']}"
                             + ("" if metadata.get("class_names") else " without class names")
                             + ("" if tokenizer.is_file() else f" without {TOKENIZER_FILENAME}")
                             + ". Received: " + str(path.parent))
        settings[version] = {"max_len": metadata["max_len"],
                             "class_names": metadata["class_names"]}
    num_classes = {len(value["class_names"]) for value in settings.values()}
    if len(num_classes) != 1:
        raise ValueError(f"One config.pbtxt serves every version, but the versions of "
                         f"{model_root} have {sorted(num_classes)} classes")
    with _staged(target) as staging:
        (staging / CONFIG_FILENAME).write_text(text_model_config(
            name, num_classes.pop(), max_batch_size, max_queue_delay_us))
        for version, path in files.items():
            folder = staging / str(version)
            folder.mkdir()
            shutil.copyfile(Path(__file__).with_name("triton_text_model.py"),
                            folder / "model.py")
            shutil.copyfile(path, folder / ONNX_FILENAME)
            shutil.copyfile(path.parent / TOKENIZER_FILENAME, folder / TOKENIZER_FILENAME)
            (folder / SETTINGS_FILENAME).write_text(
                json.dumps(settings[version], ensure_ascii=False) + "\n", encoding="utf-8")
    return target


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A hidden folder beside `target`, renamed to it when the block ends, removed if it
    fails: a repository model is there whole or not at all."""
    staging = target.parent / f".staging-{target.name}-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        yield staging
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
