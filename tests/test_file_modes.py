"""Every file and folder the project writes gets the mode the umask gives (issue 8, case 9).

A file written through `tempfile.mkstemp` is 0o600 and a folder from `tempfile.mkdtemp` 0o700
whatever the umask, so a server running as another user could not read `tokenizer.json` or
enter a version folder. The umask here is 0o027, not the common 0o022: under 0o022 a
hard-coded 0o644 / 0o755 would look right, under 0o027 it shows (0o640 / 0o750 expected).
"""

import os
import stat
from pathlib import Path

import pytest

import export
from export.artifact.manifest import TOKENIZER_FILENAME
from keras_attn.config import TrainSettings
from keras_attn.data.reference_task import make_reference_task
from keras_attn.evaluation import plots
from keras_attn.training.classifier import train_classifier
from keras_attn.training.run_folder import CURVES_FILE

UMASK = 0o027
FILE_MODE, FOLDER_MODE = 0o666 & ~UMASK, 0o777 & ~UMASK


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """A tiny run folder (`run/`) and its export (`export/1/`), written under UMASK."""
    root = tmp_path_factory.mktemp("modes")
    task = make_reference_task(48, seed=0)
    settings = TrainSettings(max_len=16, d_model=8, num_heads=2, ff_dim=16, num_layers=1,
                             epochs=1, batch_size=16, jit_compile=False)
    previous = os.umask(UMASK)
    try:
        run = train_classifier(task.subset(range(32)), task.subset(range(32, 48)), settings,
                               root / "run", verbose=0)
        if plots.available():
            plots.plot_training_curves(run.history, run.run_dir / CURVES_FILE)
        export.export_model(run.model, root / "export", tokenizer=run.tokenizer,
                            class_names=run.class_names)
    finally:
        os.umask(previous)
    return root


def wrong_modes(folder: Path) -> list[str]:
    """'path mode (expected mode)' for each path under `folder` whose mode is not the umask's."""
    wrong = []
    for path in sorted([folder, *folder.rglob("*")]):
        mode = stat.S_IMODE(path.lstat().st_mode)
        expected = FOLDER_MODE if path.is_dir() else FILE_MODE
        if mode != expected:
            wrong.append(f"{path.relative_to(folder.parent)} {oct(mode)} "
                         f"(expected {oct(expected)})")
    return wrong


@pytest.mark.parametrize("folder", ["run", "export", "export/1"])
def test_every_file_and_folder_gets_the_umask_mode(written, folder):
    assert (written / folder / TOKENIZER_FILENAME).is_file() or folder == "export"
    assert wrong_modes(written / folder) == []


def test_the_check_sees_the_files_it_claims_to(written):
    """Guards against a vacuous pass: the folders hold what a run and an export write."""
    run_files = {p.name for p in (written / "run").rglob("*") if p.is_file()}
    assert {"model.keras", TOKENIZER_FILENAME, "config.json", "history.csv"} <= run_files
    assert any(name.startswith("events.out.tfevents") for name in run_files)
    version_files = {p.name for p in (written / "export" / "1").rglob("*") if p.is_file()}
    assert {"model.onnx", "model.keras", TOKENIZER_FILENAME, "saved_model.pb",
            "manifest.json", "parity.json"} <= version_files
    assert not [p for p in (written / "export").iterdir() if p.name != "1"]  # no staging left
