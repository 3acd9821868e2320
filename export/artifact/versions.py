"""Numbered version folders, created atomically: `<out_dir>/1/`, `<out_dir>/2/`, ...

TF Serving watches `<out_dir>` and serves the highest numbered folder, so a half-written
folder must never appear under a number. `staged_version` builds in a hidden temporary folder
beside the target (same filesystem, so the final `os.rename` is atomic), and either renames it
into place or removes it. An existing version is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

STAGING_PREFIX = ".staging-"


def ascii_digits(text: str) -> bool:
    """True for a non-empty run of the digits 0-9 only. `str.isdigit` is also true for "¹",
    "²" or "٣", which `int` refuses (a ValueError where a 404 or a 400 was meant)."""
    return text.isascii() and text.isdigit()


def check_folder_path(path: str | os.PathLike, name: str) -> Path:
    """`path` as a folder that exists or can be made: neither it nor a folder above it may be
    a file.

    Args:
        path: the folder.
        name: what the user called it, for the message (e.g. "--export").

    Returns:
        `path` as a `Path`.

    Raises:
        NotADirectoryError: `path`, or the nearest existing path above it, is not a folder.
    """
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == path else f"lies under {str(existing)!r}, a file"
        raise NotADirectoryError(f"{name} must name a folder (it may not exist yet). "
                                 f"Received: {name} {str(path)!r}, which {where}")
    return path


def existing_versions(out_dir: str | os.PathLike) -> list[int]:
    """The version numbers present in `out_dir`, ascending (folders named by an integer)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(int(path.name) for path in out_dir.iterdir()
                  if path.is_dir() and ascii_digits(path.name))


def next_version(out_dir: str | os.PathLike) -> int:
    """One more than the highest existing version, or 1 in an empty/new `out_dir`."""
    return max(existing_versions(out_dir), default=0) + 1


def check_version(out_dir: str | os.PathLike, version: int) -> Path:
    """The folder for `version`, after checking it is a positive int not taken yet."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer. Received: version={version!r}")
    target = Path(out_dir) / str(version)
    if target.exists():
        raise FileExistsError(
            f"Version {version} already exists at {str(target)!r}; versions are never "
            f"overwritten. The next free version is {next_version(out_dir)}"
        )
    return target


@contextlib.contextmanager
def staged_version(out_dir: str | os.PathLike, version: int) -> Iterator[Path]:
    """Yields an empty temporary folder; on success renames it to `<out_dir>/<version>`.

    On any exception inside the block, or if the version appeared meanwhile, the temporary
    folder is removed and the exception propagates; nothing under `<out_dir>` changes.

    Raises:
        NotADirectoryError: `out_dir` or a path above it is a file (`check_folder_path`).
        FileExistsError: the version exists already (`check_version`).
        OSError: a write inside the block failed (a full disk: errno ENOSPC), re-raised with
            the version, the folder and that nothing was left behind.

    Example:
        >>> with staged_version("saved_models/demo", 3) as folder:   # doctest: +SKIP
        ...     (folder / "model.onnx").write_bytes(data)
    """
    check_folder_path(out_dir, "The export folder")
    target = check_version(out_dir, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkdtemp: its mode 0o700 would hide the version from a server user. mkdir
    # gives the mode the umask gives every folder; the random name keeps stagings apart.
    staging = target.parent / f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        yield staging
        # os.rename fails on a non-empty target; check first so an empty one is not replaced.
        check_version(out_dir, version)
        os.rename(staging, target)
    except FileExistsError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except OSError as error:  # a write failed: a full disk, a permission
        shutil.rmtree(staging, ignore_errors=True)
        message = (f"Writing version {version} into {str(out_dir)!r} failed "
                   f"({error.strerror or error}); its unfinished folder was removed, and the "
                   "versions already there are untouched")
        raise (OSError(error.errno, message) if error.errno else OSError(message)) from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
