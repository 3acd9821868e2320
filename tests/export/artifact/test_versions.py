"""export/artifact/versions.py: numbered version folders, staged and renamed into place
atomically."""

import os
import re

import pytest

from export.artifact.versions import (
    STAGING_PREFIX,
    check_folder_path,
    existing_versions,
    next_version,
    staged_version,
)


def test_next_version_counts_integer_folders_only(tmp_path):
    assert next_version(tmp_path / "missing") == 1
    for name in ("1", "3", "notes", ".staging-4-abc"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version")
    assert existing_versions(tmp_path) == [1, 3]
    assert next_version(tmp_path) == 4


def test_staged_version_renames_into_place(tmp_path):
    with staged_version(tmp_path / "model", 1) as folder:
        assert folder.parent == tmp_path / "model" and folder.name.startswith(STAGING_PREFIX)
        assert not (tmp_path / "model" / "1").exists()
        (folder / "saved_model.pb").write_bytes(b"graph")
    assert sorted(os.listdir(tmp_path / "model")) == ["1"]
    assert (tmp_path / "model" / "1" / "saved_model.pb").read_bytes() == b"graph"
    assert (tmp_path / "model" / "1").stat().st_mode & 0o755 == 0o755


def test_failure_inside_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with staged_version(tmp_path, 2) as folder:
            (folder / "half-written").write_bytes(b"x")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_existing_version_is_never_overwritten(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "keep").write_text("v1")
    with pytest.raises(FileExistsError, match="Version 1 already exists.*next free version is 2"):
        with staged_version(tmp_path, 1):
            pytest.fail("the block must not run")
    assert (tmp_path / "1" / "keep").read_text() == "v1"


def test_version_taken_while_staging_is_not_overwritten(tmp_path):
    with pytest.raises(FileExistsError):
        with staged_version(tmp_path, 1) as folder:
            (folder / "mine").write_text("late")
            (tmp_path / "1").mkdir()  # another exporter won the race
    assert os.listdir(tmp_path) == ["1"] and os.listdir(tmp_path / "1") == []


@pytest.mark.parametrize("version", [0, -1, True, 1.0, "2"])
def test_version_must_be_a_positive_int(tmp_path, version):
    with pytest.raises(ValueError, match=re.escape(f"version={version!r}")):
        with staged_version(tmp_path, version):
            pass


def test_an_export_folder_that_is_a_file_is_refused_before_anything_is_written(tmp_path):
    file = tmp_path / "saved"
    file.write_text("precious")
    assert check_folder_path(tmp_path / "new" / "deeper", "--export") == tmp_path / "new" / "deeper"
    for out_dir, where in ((file, "which is a file"),
                           (file / "demo", "lies under .*saved.*a file")):
        with pytest.raises(NotADirectoryError, match=f"^--export must name a folder.*{where}"):
            check_folder_path(out_dir, "--export")
        with pytest.raises(NotADirectoryError, match="The export folder must name a folder"):
            with staged_version(out_dir, 1):
                pass
    assert file.read_text() == "precious" and sorted(tmp_path.iterdir()) == [file]
