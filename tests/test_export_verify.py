"""export/verifier.py: `verify` re-checks an exported folder: files, loading, parity."""

import json

import pytest
from export_cases import CLASSIFIER, LANGUAGE_MODEL, copy_version, exported, run_python

from export import verify
from export.manifest import write_manifest


@pytest.fixture
def version(tmp_path):
    """A private copy of the classifier's version 1, free to tamper with."""
    return copy_version(CLASSIFIER, tmp_path / "model") / "1"


def flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", [CLASSIFIER, LANGUAGE_MODEL])
def test_intact_export_verifies(name):
    report = verify(exported(name)[1].path)
    assert report.ok and report.problems == ()
    assert [pair.pair for pair in report.parity.pairs] == [
        "keras vs savedmodel", "keras vs onnxruntime (basic)", "keras vs onnxruntime (all)"]
    assert all(pair.max_abs_diff <= 1e-5 for pair in report.parity.pairs)
    lines = report.table().splitlines()
    assert lines[1] == "files: 7 match manifest.json (sha256 and size)"
    assert lines[-1] == "OK"
    assert sum(line.startswith("keras vs ") and line.endswith("pass") for line in lines) == 3


def test_flipped_byte_in_model_onnx_fails_naming_the_file(version):
    flip_byte(version / "model.onnx")
    report = verify(version)
    assert not report.ok
    assert report.problems == ("model.onnx: changed (sha256 differs from the manifest)",)
    assert report.parity is None
    assert "problem: model.onnx: changed" in report.table()
    assert report.table().splitlines()[-1] == "FAILED"


def test_missing_file_fails_naming_the_file(version):
    (version / "variables" / "variables.data-00000-of-00001").unlink()
    report = verify(version)
    assert not report.ok
    assert report.problems == ("variables/variables.data-00000-of-00001: missing",)


def test_corrupt_onnx_with_matching_manifest_fails_to_load_naming_the_file(version):
    config = json.loads((version / "manifest.json").read_text())["config"]
    (version / "model.onnx").write_bytes(b"not a model")
    write_manifest(version, {"config": config})  # as if the manifest had been forged too
    report = verify(version)
    assert not report.ok
    assert len(report.problems) == 1 and report.problems[0].startswith(
        "model.onnx: cannot be loaded")


def test_parity_beyond_tolerance_fails(version):
    report = verify(version, tolerance=1e-12)
    assert not report.ok and report.problems == ()
    assert not all(pair.passed for pair in report.parity.pairs)
    assert "FAIL (worst: batch=" in report.table()


def test_missing_folder(tmp_path):
    report = verify(tmp_path / "nope")
    assert not report.ok and report.problems == (f"{tmp_path / 'nope'}: no such folder",)


def test_verify_in_a_fresh_process_loads_model_keras_by_itself():
    """The CLI's situation: no keras_attn layer registered before `verify` loads model.keras."""
    done = run_python("import sys, export; report = export.verify(sys.argv[1]); "
                      "print(report.table()); sys.exit(0 if report.ok else 1)",
                      str(exported(LANGUAGE_MODEL)[1].path))
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "OK"
