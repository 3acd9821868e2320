"""`manifest.json`: what a version folder holds, so that a copy can be checked byte for byte.

Every file (SavedModel, ONNX files, .keras, parity report, tokenizer) is listed with its sha256 and
size, beside the library versions that produced it, the model config and the creation time.
`check_manifest` is the integrity half of `export.verify`. Standard library only.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The files of a version folder beside the SavedModel's own (saved_model.pb, variables/, ...).
MANIFEST_FILENAME = "manifest.json"
ONNX_FILENAME = "model.onnx"
# onnxruntime-only files built from model.onnx (see export.formats.optimize); each is optional.
OPTIMIZED_FILENAME = "model.optimized.onnx"
INT8_FILENAME = "model.int8.onnx"
KERAS_FILENAME = "model.keras"
PARITY_FILENAME = "parity.json"
TOKENIZER_FILENAME = "tokenizer.json"
# Language models: one cached decoding step (export.runtime.decoder_step), and that step
# rewritten into fused onnxruntime kernels (onnxruntime only, shipped when it passes its check).
DECODER_FILENAME = "decoder.onnx"
OPTIMIZED_DECODER_FILENAME = "decoder.optimized.onnx"
# The representative token ids model.int8.onnx was calibrated and checked on, kept beside it
# (when export_model was given some) so that `verify` checks it on the same data; a training
# run keeps its own in the run folder.
REPRESENTATIVE_FILENAME = "representative_ids.npy"
# Every export: each block's attention weights, for viewers (export.formats.attention_onnx).
ATTENTION_FILENAME = "attention.onnx"
FORMAT_VERSION = 1
LIBRARIES = ("keras-attn", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(folder: Path) -> list[str]:
    """Every file under `folder` as a sorted POSIX path relative to it, the manifest excluded."""
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.relative_to(folder).as_posix() != MANIFEST_FILENAME
    )


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries an export depends on ("not installed" if absent)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_manifest(folder: str | os.PathLike, details: Mapping[str, Any]) -> dict[str, Any]:
    """Hashes every file in `folder` and writes `manifest.json` there.

    Args:
        folder: the (complete) version folder.
        details: extra JSON-ready entries, e.g. {"task": ..., "config": ..., "opset": ...}.

    Returns:
        The manifest as written.
    """
    folder = Path(folder)
    manifest = {
        "format": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **details,
        "libraries": library_versions(),
        "files": {
            name: {"sha256": sha256_of(folder / name), "size": (folder / name).stat().st_size}
            for name in list_files(folder)
        },
    }
    (folder / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The parsed `manifest.json` of a version folder.

    Raises:
        FileNotFoundError: when there is none.
        ValueError: when it is not a manifest this module wrote.
    """
    path = Path(folder) / MANIFEST_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{MANIFEST_FILENAME} is missing from {str(folder)!r}")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{MANIFEST_FILENAME} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ValueError(f"{MANIFEST_FILENAME} has no 'files' table; it was not written by "
                         "export.export_model")
    return manifest


def check_manifest(folder: str | os.PathLike) -> list[str]:
    """Compares the files in `folder` with its manifest.

    Returns:
        One line per problem, each naming the file: missing, changed (sha256 or size
        differs), or not listed in the manifest. Empty when the folder is intact.
    """
    folder = Path(folder)
    try:
        listed = read_manifest(folder)["files"]
    except (FileNotFoundError, ValueError) as error:
        return [str(error)]
    problems = []
    for name, expected in sorted(listed.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != expected["size"] or sha256_of(path) != expected["sha256"]:
            problems.append(f"{name}: changed (sha256 differs from the manifest)")
    problems += [f"{name}: not listed in the manifest"
                 for name in list_files(folder) if name not in listed]
    return problems
