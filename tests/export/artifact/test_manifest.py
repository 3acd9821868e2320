"""export/artifact/manifest.py: every file of a version folder with its sha256, checked back."""

import hashlib
import json

import pytest

from export.artifact.manifest import (
    MANIFEST_FILENAME,
    check_manifest,
    read_manifest,
    write_manifest,
)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "variables").mkdir()
    (tmp_path / "variables" / "variables.index").write_bytes(b"index")
    (tmp_path / "model.onnx").write_bytes(b"onnx bytes")
    write_manifest(tmp_path, {"task": "classifier", "config": {"max_len": 16}})
    return tmp_path


def test_manifest_lists_every_file_with_sha256_size_versions(folder):
    manifest = json.loads((folder / MANIFEST_FILENAME).read_text())
    assert manifest["files"] == {
        "model.onnx": {"sha256": hashlib.sha256(b"onnx bytes").hexdigest(), "size": 10},
        "variables/variables.index": {"sha256": hashlib.sha256(b"index").hexdigest(),
                                      "size": 5},
    }
    assert manifest["task"] == "classifier" and manifest["config"] == {"max_len": 16}
    assert {"python", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime",
            "numpy"} <= set(manifest["libraries"])
    assert manifest["created"].endswith("+00:00")
    assert check_manifest(folder) == []


def test_flipped_byte_names_the_file(folder):
    data = bytearray((folder / "model.onnx").read_bytes())
    data[3] ^= 0x01
    (folder / "model.onnx").write_bytes(bytes(data))
    assert check_manifest(folder) == ["model.onnx: changed (sha256 differs from the manifest)"]


def test_missing_and_unlisted_files_are_named(folder):
    (folder / "variables" / "variables.index").unlink()
    (folder / "extra.txt").write_text("?")
    assert check_manifest(folder) == ["variables/variables.index: missing",
                                      "extra.txt: not listed in the manifest"]


def test_missing_or_broken_manifest(folder):
    (folder / MANIFEST_FILENAME).write_text("{not json")
    assert check_manifest(folder)[0].startswith("manifest.json is not valid JSON")
    (folder / MANIFEST_FILENAME).write_text("[]")
    with pytest.raises(ValueError, match="no 'files' table"):
        read_manifest(folder)
    (folder / MANIFEST_FILENAME).unlink()
    assert check_manifest(folder) == [f"manifest.json is missing from {str(folder)!r}"]
