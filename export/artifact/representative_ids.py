"""`representative_ids.npy`: token ids like those a model will serve, kept where they are used.

A training run keeps its held-out texts, tokenized, in its run folder; `export_model` calibrates
and checks model.int8.onnx on them and keeps them beside it in the version folder, so that
`verify` checks the int8 file later on the same data. NumPy and the standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from export.artifact.manifest import REPRESENTATIVE_FILENAME

# How many held-out rows a training run keeps as representative ids.
REPRESENTATIVE_ROWS = 512


def save_representative_ids(folder: str | os.PathLike, token_ids: np.ndarray,
                            rows: int = REPRESENTATIVE_ROWS) -> Path:
    """Writes the first `rows` rows of `token_ids` (int `[n, width]`, right-padded with 0)
    that hold a real id to `folder/representative_ids.npy` as int32, for `export_model`'s
    `representative_ids`; returns the path."""
    ids = np.asarray(token_ids)
    path = Path(folder) / REPRESENTATIVE_FILENAME
    np.save(path, ids[ids[:, 0] != 0][:rows].astype(np.int32), allow_pickle=False)
    return path


def load_representative_ids(folder: str | os.PathLike) -> np.ndarray | None:
    """`folder/representative_ids.npy` (int32 `[n, width]`; a version folder's or a run
    folder's), or None when there is none."""
    path = Path(folder) / REPRESENTATIVE_FILENAME
    return np.load(path, allow_pickle=False) if path.is_file() else None
