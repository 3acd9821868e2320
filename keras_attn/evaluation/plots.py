"""PNG figures: attention heatmaps (tokens on both axes), training curves, confusion matrices.

matplotlib is the optional extra `keras-attn[plots]`; it is imported when a figure is drawn.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

INSTALL_HINT = "pip install 'keras-attn[plots]'"
# Fonts for the scripts matplotlib's default font (DejaVu Sans) lacks, used where installed
# (matplotlib >= 3.6 falls back from one family to the next, glyph by glyph).
FALLBACK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK KR",
                  "Noto Sans CJK TC", "WenQuanYi Zen Hei", "Droid Sans Fallback")
# matplotlib's warning for each character no font in use has: "Glyph 26089 (\N{...}) missing
# from font(s) DejaVu Sans."
_MISSING_GLYPH = re.compile(r"Glyph (\d+) .*missing from (current )?font")


class PlotsUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def available() -> bool:
    """Whether matplotlib can be imported, so that figures can be drawn."""
    return importlib.util.find_spec("matplotlib") is not None


def _every_script(draw: Callable[..., Path]) -> Callable[..., Path]:
    """Draws with the installed `FALLBACK_FONTS` after the default font, and turns
    matplotlib's warning per missing character (twenty lines for one Chinese sentence) into one
    UserWarning that names them: they are drawn as boxes."""

    @functools.wraps(draw)
    def drawn(*args, **kwargs) -> Path:
        _pyplot()  # PlotsUnavailableError without matplotlib
        import matplotlib
        from matplotlib import font_manager

        installed = {font.name for font in font_manager.fontManager.ttflist}
        families = ["sans-serif", *(name for name in FALLBACK_FONTS if name in installed)]
        with matplotlib.rc_context({"font.family": families}), _quiet_font_search(), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = draw(*args, **kwargs)
        missing = []
        for warning in caught:
            glyph = _MISSING_GLYPH.search(str(warning.message))
            if glyph is None:
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)
            elif chr(int(glyph.group(1))) not in missing:
                missing.append(chr(int(glyph.group(1))))
        if missing:
            warnings.warn(f"No installed font has {len(missing)} character(s) of the labels, "
                          f"drawn as boxes in {path}: {' '.join(missing[:12])}"
                          f"{' ...' if len(missing) > 12 else ''}. Install a font that has "
                          "them (for Chinese, Japanese and Korean: apt-get install "
                          "fonts-noto-cjk), then delete matplotlib's font cache "
                          "(~/.cache/matplotlib).",
                          UserWarning, stacklevel=2)
        return path

    return drawn


@contextlib.contextmanager
def _quiet_font_search():
    """matplotlib logs "findfont: Failed to find font weight normal for <font>" for a fallback
    font that has one weight only, and then uses it: not for the user."""
    logger = logging.getLogger("matplotlib.font_manager")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _pyplot():
    if not available():
        raise PlotsUnavailableError(f"Drawing figures needs matplotlib: {INSTALL_HINT}")
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


@_every_script
def plot_attention(tokens: Sequence[str], weights: np.ndarray, path: str | Path,
                   title: str = "") -> Path:
    """Draws one head's attention weights `[n, n]`: row = the word that looks, column = the
    word it looks at. Each row sums to 1 (walkthrough step 4.5)."""
    plt = _pyplot()
    n = len(tokens)
    weights = np.asarray(weights)[:n, :n]
    size = max(4.0, 0.45 * n + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0)
    return _save_matrix(figure, axes, image, tokens, ("attended to (key)", "attending (query)"),
                        title, path)


@_every_script
def plot_training_curves(history: Mapping[str, Sequence[float]], path: str | Path,
                         metrics: tuple[str, str] = ("loss", "accuracy")) -> Path:
    """Draws two metrics per epoch (loss and accuracy; a language model: loss and
    perplexity), training and validation, side by side."""
    plt = _pyplot()
    figure, all_axes = plt.subplots(1, 2, figsize=(10, 4))
    for axes, metric in zip(all_axes, metrics, strict=True):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = history.get(prefix + metric)
            if values:
                axes.plot(range(1, len(values) + 1), values, marker="o", label=label)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    return _save(figure, path)


@_every_script
def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: str | Path,
                          title: str = "") -> Path:
    """Draws a confusion matrix `[classes, classes]` (row = actual, column = predicted), each
    row shaded by its share of the actual class, with the counts written in."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    n = len(class_names)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * n + 2.5)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(n):
        for column in range(n):
            axes.text(column, row, str(int(matrix[row, column])), ha="center", va="center",
                      fontsize=8, color="white" if shares[row, column] > 0.5 else "black")
    return _save_matrix(figure, axes, image, class_names, ("predicted class", "actual class"),
                        title, path)


def _save_matrix(figure, axes, image, labels, axis_names: tuple[str, str], title: str, path):
    """A square matrix figure finished and saved: `labels` on both axes (columns rotated),
    `axis_names` (x, y), the title and a colour bar."""
    axes.set_xticks(range(len(labels)), labels, rotation=90)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel(axis_names[0])
    axes.set_ylabel(axis_names[1])
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    return _save(figure, path)


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    _pyplot().close(figure)
    return path
