"""export/exporter.py: `export_model` writes complete, verified versions, atomically."""

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest
from export_cases import CLASSIFIER, LANGUAGE_MODEL, build_model, copy_version, drift, exported

import export.formats.onnx
from export import ParityError, export_model, runtime
from export.artifact.manifest import sha256_of

SAVEDMODEL_FILES = {"saved_model.pb", "fingerprint.pb", "variables/variables.index",
                    "assets.extra/tf_serving_warmup_requests",
                    "variables/variables.data-00000-of-00001"}


def snapshot(folder):
    """Every file under `folder` (staging folders included) -> its sha256."""
    return {path.relative_to(folder).as_posix(): sha256_of(path)
            for path in sorted(folder.rglob("*")) if path.is_file()}


class WordTokenizer:
    """What export_model asks of a tokenizer: `.vocab_size` equal to the model's (50 in
    export_cases) and `.save(path)`."""

    def __init__(self, vocab_size=50):
        self.vocab_size = vocab_size

    def save(self, path):
        with open(path, "w") as file:
            json.dump({"vocabulary": ["[PAD]", "[UNK]", "good", "bad"]}, file)


@pytest.mark.parametrize("name, task", [(CLASSIFIER, "classifier"),
                                        (LANGUAGE_MODEL, "language_model")])
def test_version_folder_layout_and_manifest(name, task):
    _, result = exported(name)
    assert result.version == 1 and result.path.name == "1"
    assert result.onnx_path == result.path / "model.onnx"
    assert result.keras_path == result.path / "model.keras"
    manifest = json.loads(result.manifest_path.read_text())
    int8 = {"model.int8.onnx"} if result.int8_path else set()  # within its bound only
    decoder = ({"decoder.onnx", "decoder.optimized.onnx"} if task == "language_model"
               else set())  # export/runtime/decoder_step.py, export/verification/decoder_parity.py
    assert set(manifest["files"]) == SAVEDMODEL_FILES | int8 | decoder | {
        "model.onnx", "model.optimized.onnx", "attention.onnx", "model.keras", "parity.json"}
    assert manifest["attention"]["shipped"] and manifest["attention"]["parity"]["ok"]
    assert (manifest["decoder"] is None) == (task == "classifier")
    assert set(manifest["onnxruntime_files"]) == {"model.optimized.onnx", "model.int8.onnx"}
    assert set(snapshot(result.path)) == set(manifest["files"]) | {"manifest.json"}
    assert manifest["task"] == task and manifest["opset"] == 17
    assert manifest["config"] == runtime.load(result.path).metadata["config"]
    logits = ("float32 [batch, num_classes]" if task == "classifier"
              else "float32 [batch, sequence, vocab_size]")
    signatures = dict(manifest["signatures"])
    decoder_step = signatures.pop("decoder_step", None)  # language models: a cached step
    assert signatures == {
        name: {"inputs": {"token_ids": f"{dtype} [batch, sequence]"}, "outputs": {"logits": logits}}
        for name, dtype in (("serving_default", "int32"), ("serving_int64", "int64"))}
    assert (decoder_step is None) == (task == "classifier")
    if decoder_step is not None:  # export/formats/savedmodel_decoder.py: decoder.onnx's endpoints
        assert decoder_step["inputs"] == {
            "token_ids": "int64 [batch, new]", "position_ids": "int64 [batch, new]",
            "past_key_values.0.key": "float32 [batch, 2, past, 8]",
            "past_key_values.0.value": "float32 [batch, 2, past, 8]"}
        assert decoder_step["outputs"]["logits"] == "float32 [batch, new, 50]"
        assert manifest["decoder"]["savedmodel_signature"] == "decoder_step"
        assert manifest["decoder"]["parity"]["savedmodel decoder vs recompute"] <= 1e-5
    assert manifest["onnx_io"]["inputs"] == {"token_ids": "int32 [batch, sequence]"}
    assert manifest["onnx_io"]["outputs"] == {"logits": logits.replace("num_classes", "3")
                                              .replace("vocab_size", "50")}
    assert manifest["trained_dtype_policy"] == "float32"
    assert os.listdir(result.path.parent) == ["1"]  # no staging folder left over


def test_second_export_is_version_2_and_version_1_is_unchanged(tmp_path):
    model, _ = exported(CLASSIFIER)
    out_dir = copy_version(CLASSIFIER, tmp_path / "model")
    before = snapshot(out_dir / "1")
    result = export_model(model, out_dir, tokenizer=WordTokenizer(),
                          class_names=["negative", "neutral", "positive"])
    assert result.version == 2 and result.path == out_dir / "2"
    assert sorted(os.listdir(out_dir)) == ["1", "2"]
    assert snapshot(out_dir / "1") == before
    manifest = json.loads(result.manifest_path.read_text())
    assert "tokenizer.json" in manifest["files"]
    assert json.loads((result.path / "tokenizer.json").read_text())["vocabulary"][2] == "good"
    assert manifest["class_names"] == ["negative", "neutral", "positive"]
    assert runtime.load(result.path).class_names == ["negative", "neutral", "positive"]
    with pytest.raises(FileExistsError, match="Version 2 already exists"):
        export_model(model, out_dir, version=2)
    assert snapshot(out_dir / "2") == snapshot(result.path)


def test_failure_partway_leaves_nothing_behind(tmp_path, monkeypatch):
    model, _ = exported(CLASSIFIER)
    out_dir = copy_version(CLASSIFIER, tmp_path / "model")
    before = snapshot(out_dir)

    def broken_conversion(*args, **kwargs):
        raise RuntimeError("tf2onnx fell over")

    monkeypatch.setattr(export.formats.onnx, "convert_to_onnx", broken_conversion)
    with pytest.raises(RuntimeError, match="tf2onnx fell over"):
        export_model(model, out_dir)
    assert os.listdir(out_dir) == ["1"]
    assert snapshot(out_dir) == before


@contextlib.contextmanager
def small_disk(folder: Path, size_bytes: int):
    """A tmpfs of `size_bytes` mounted at `folder`: a real filesystem that fills up, so every
    writer (TensorFlow's C++, onnx's protobuf, Keras's zip, Python's own) meets a real ENOSPC."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs",
                              str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip("a full disk is made with a tmpfs, which needs mount (root, or "
                    f"CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def free_bytes(folder: Path) -> int:
    status = os.statvfs(folder)
    return status.f_bavail * status.f_frsize


# The tiny classifier's version folder is ~480 kB, written in this order: saved_model.pb
# (~310 kB) and variables/, model.onnx, model.optimized.onnx, model.keras, parity.json,
# manifest.json. The free space left decides which writer meets the full disk.
@pytest.mark.parametrize("free_kb, writer", [(64, "SavedModel"), (380, "ONNX"),
                                             (440, "model.keras")])
def test_a_full_disk_during_export_leaves_every_earlier_version_byte_identical(
        tmp_path, free_kb, writer):
    """Issue 19 (a server under faults): the export fails with an OSError that says the disk
    is full (TensorFlow's own ResourceExhaustedError was a traceback from the CLI), its staging
    folder is gone, version 1 is byte-identical, and the space is given back."""
    model, result = exported(CLASSIFIER)
    with small_disk(tmp_path / "disk", 2 * 1024 * 1024) as disk:
        out_dir = disk / "model"
        shutil.copytree(result.path.parent, out_dir)
        before = snapshot(out_dir)
        (disk / "filler").write_bytes(b"\0" * (free_bytes(disk) - free_kb * 1024))
        left = free_bytes(disk)
        with pytest.raises(OSError, match="No space left on device") as error:
            export_model(model, out_dir)
        assert f"Writing version 2 into {str(out_dir)!r} failed" in str(error.value)
        assert (writer == "SavedModel") == ("Cannot write the SavedModel" in str(error.value))
        assert os.listdir(out_dir) == ["1"]  # no staging folder, no version 2
        assert snapshot(out_dir) == before
        assert free_bytes(disk) == left


def test_parity_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    """An ONNX model that drifts by 1e-3 must never become a version."""
    model, _ = exported(CLASSIFIER)
    drift(monkeypatch, "onnxruntime (all)")
    with pytest.raises(ParityError) as error:
        export_model(model, tmp_path / "model")
    failed = [pair.pair for pair in error.value.report.pairs if not pair.passed]
    assert failed == ["keras vs onnxruntime (all)"]
    assert "FAIL (worst:" in str(error.value)
    assert os.listdir(tmp_path / "model") == []


@pytest.mark.parametrize("name, class_names, message", [
    (CLASSIFIER, ["a", "b"], "must be 3 strings"),
    (CLASSIFIER, ["a", "b", 3], "must be 3 strings"),
    (LANGUAGE_MODEL, ["a"], "classifiers only"),
])
def test_bad_class_names_are_refused_before_writing(tmp_path, name, class_names, message):
    with pytest.raises(ValueError, match=message):
        export_model(exported(name)[0], tmp_path / "model", class_names=class_names)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("tokenizer, received", [
    (WordTokenizer(vocab_size=4), "vocab_size=4"),
    (WordTokenizer(vocab_size=51), "vocab_size=51"),
    (object(), "vocab_size=None"),
])
def test_tokenizer_that_does_not_fit_the_model_is_refused_before_writing(tmp_path, monkeypatch,
                                                                          tokenizer, received):
    written = []
    monkeypatch.setattr(WordTokenizer, "save", lambda self, path: written.append(path))
    with pytest.raises(ValueError) as error:
        export_model(exported(CLASSIFIER)[0], tmp_path / "model", tokenizer=tokenizer)
    assert "model's vocab_size=50" in str(error.value)
    assert f"Received: a tokenizer with {received}" in str(error.value)
    assert not (tmp_path / "model").exists() and written == []


def test_model_that_outputs_nan_is_refused(tmp_path):
    """NaN logits agree with nothing, not even the NaN every runtime computes from them."""
    model = build_model(CLASSIFIER)
    weights = model.get_weights()
    weights[-1] = np.full_like(weights[-1], np.nan)  # the output bias: every logit is NaN
    model.set_weights(weights)
    with pytest.raises(ParityError) as error:
        export_model(model, tmp_path / "model")
    assert all(not pair.passed and pair.max_abs_diff == float("inf")
               for pair in error.value.report.pairs)
    assert os.listdir(tmp_path / "model") == []


def test_a_model_not_built_by_keras_attn_is_refused(tmp_path):
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    logits = keras.layers.Dense(3)(keras.layers.Embedding(50, 8)(token_ids))
    with pytest.raises(ValueError, match="Expected a model built by keras_attn"):
        export_model(keras.Model(token_ids, logits), tmp_path / "model")
    assert not (tmp_path / "model").exists()


@pytest.fixture(scope="module")
def mixed_precision_export(tmp_path_factory):
    """A classifier built under mixed_float16 and compiled with jit_compile=True, exported."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model(CLASSIFIER)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile(optimizer="adam", jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return export_model(model, tmp_path_factory.mktemp("mixed") / "model")


def test_a_mixed_precision_model_exports_float32(mixed_precision_export):
    import onnx

    result = mixed_precision_export
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["trained_dtype_policy"] == "mixed_float16"
    assert manifest["onnx_io"]["outputs"] == {"logits": "float32 [batch, 3]"}
    graph = onnx.load(result.onnx_path).graph
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    logits = runtime.load(result.path).predict([[5, 6, 7]])
    assert logits.dtype == np.float32
    assert all(pair.passed for pair in result.parity.pairs)


def test_the_exported_model_keras_never_predicts_under_xla(mixed_precision_export):
    """Loaded with plain Keras, not through keras_attn: the file itself carries no XLA."""
    loaded = keras.models.load_model(mixed_precision_export.keras_path, safe_mode=True)
    assert loaded.dtype_policy.name == "float32"
    assert not loaded.compiled or loaded.jit_compile is False
    for bad in ([[5, 50, 9]], [[5, -3, 9]]):
        with pytest.raises(Exception, match=r"token_ids must lie in \[0, vocab_size=50\)"):
            loaded.predict(np.array(bad), verbose=0)


def test_raw_onnx_gives_nan_for_a_sequence_of_padding_only_not_an_answer():
    """The checked paths reject such a row; the raw file, which cannot raise, says NaN."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(exported(CLASSIFIER)[1].onnx_path),
                                   providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"token_ids": np.array([[5, 6], [0, 0]], np.int32)})
    assert np.isfinite(logits[0]).all() and np.isnan(logits[1]).all()
