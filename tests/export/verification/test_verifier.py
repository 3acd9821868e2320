"""export/verification/verifier.py: `verify` re-checks an exported folder: files, loading,
parity."""

import json
import re
import shutil

import numpy as np
import onnx
import pytest
from export_cases import (
    CLASSIFIER,
    LANGUAGE_MODEL,
    copy_version,
    exported,
    exported_confident,
    run_python,
)
from onnx import numpy_helper

from export import verify
from export.artifact.manifest import write_manifest


@pytest.fixture
def version(tmp_path):
    """A private copy of the classifier's version 1, free to tamper with."""
    return copy_version(CLASSIFIER, tmp_path / "model") / "1"


def flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    path.write_bytes(bytes(data))


FP32_PAIRS = ["keras vs savedmodel", "keras vs savedmodel int64",
              "keras vs onnxruntime (basic)", "keras vs onnxruntime (all)",
              "keras vs onnxruntime optimized (basic)", "keras vs onnxruntime optimized (all)"]


@pytest.mark.parametrize("name", [CLASSIFIER, LANGUAGE_MODEL])
def test_intact_export_verifies(name):
    result = exported(name)[1]
    report = verify(result.path)
    assert report.ok and report.problems == ()
    assert [pair.pair for pair in report.parity.pairs] == FP32_PAIRS
    assert all(pair.max_abs_diff <= 1e-5 for pair in report.parity.pairs)
    # the int8 file, when its export shipped it, is checked apart against its bound
    assert [r.pair for r in report.parity.agreements] == (
        ["keras vs onnxruntime int8 (all)"] if result.int8_path else [])
    lines = report.table().splitlines()
    # the SavedModel's 5 files (with the TF Serving warm-up records), model.onnx,
    # model.optimized.onnx, attention.onnx, model.keras, parity.json; + int8;
    # + decoder(.optimized).onnx
    files = (11 if result.int8_path else 10) + 2 * (name == LANGUAGE_MODEL)
    assert lines[1] == f"files: {files} match manifest.json (sha256 and size)"
    assert lines[-1] == "OK"
    assert sum(line.startswith("keras vs ") and line.endswith("pass") for line in lines) == (
        len(FP32_PAIRS) + len(report.parity.agreements))


def test_int8_is_verified_against_its_bound_in_its_own_section():
    report = verify(exported_confident()[1].path)
    assert report.ok and [pair.pair for pair in report.parity.pairs] == FP32_PAIRS
    (agreement,) = report.parity.agreements
    assert agreement.pair == "keras vs onnxruntime int8 (all)" and agreement.agreement == 1.0
    table = report.table()
    pairs, int8 = table.split("int8: checked against its accuracy bound")
    assert "int8" not in pairs
    assert re.search(r"\nkeras vs onnxruntime int8 \(all\) +100\.00% of 210 +parity battery +"
                     r">= 99% +0\.\d+ +0 +1e-05 +pass", int8)  # row dependence 0 <= 1e-05


def test_int8_below_its_bound_fails_verify(tmp_path):
    """An int8 file whose predictions moved (here: its output bias now favours class 1, and
    the manifest was forged to match) fails verify on its bound, while every fp32 pair
    passes."""
    version = shutil.copytree(exported_confident()[1].path, tmp_path / "1")
    model = onnx.load(version / "model.int8.onnx")
    (bias,) = [tensor for tensor in model.graph.initializer
               if numpy_helper.to_array(tensor).tolist() == [8.0, 0.0, 0.0]]
    bias.CopyFrom(numpy_helper.from_array(np.array([0.0, 8.0, 0.0], np.float32), bias.name))
    onnx.save(model, version / "model.int8.onnx")
    manifest = json.loads((version / "manifest.json").read_text())
    write_manifest(version, {key: value for key, value in manifest.items() if key != "files"})
    report = verify(version)
    assert not report.ok and report.problems == ()
    assert all(pair.passed for pair in report.parity.pairs)
    (agreement,) = report.parity.agreements
    assert agreement.agreement == 0.0 and not agreement.passed
    assert re.search(r"int8 \(all\) +0\.00% of 210 +parity battery +>= 99% .* FAIL \(agreement, "
                     r"worst: batch=",
                     report.table())
    assert report.table().splitlines()[-1] == "FAILED"


@pytest.mark.parametrize("filename", ["model.onnx", "model.optimized.onnx", "model.int8.onnx"])
def test_flipped_byte_in_an_onnx_file_fails_naming_the_file(tmp_path, filename):
    version = shutil.copytree(exported_confident()[1].path, tmp_path / "1")
    flip_byte(version / filename)
    report = verify(version)
    assert not report.ok
    assert report.problems == (f"{filename}: changed (sha256 differs from the manifest)",)
    assert report.parity is None
    assert f"problem: {filename}: changed" in report.table()
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


def test_parity_beyond_tolerance_fails(version, monkeypatch):
    import export.verification.verifier

    # With no fp32 floor to raise it, the tolerance given is the tolerance used.
    monkeypatch.setattr(export.verification.verifier, "fp32_error_floor", lambda model, cases: 0.0)
    report = verify(version, tolerance=1e-12)
    # attention.onnx is held to the same tolerance, and says so
    (problem,) = report.problems
    assert problem.startswith("attention.onnx: every block's attention weights on 20 battery "
                              "cases vs Keras: ") and problem.endswith("(tolerance 1e-12, "
                              f"worst {report.attention['worst_case']}); FAIL")
    assert not report.ok and not all(pair.passed for pair in report.parity.pairs)
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
