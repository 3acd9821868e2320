"""Figures: PNGs that open, with the right content size."""

import warnings

import matplotlib.image
import numpy as np

from keras_attn.evaluation import plots


def test_attention_heatmap_and_curves_are_pngs(tmp_path):
    weights = np.full((4, 4), 0.25)
    path = plots.plot_attention(["the", "dog", ",", "it"], weights, tmp_path / "a" / "h.png",
                                title="t")
    assert matplotlib.image.imread(path).ndim == 3
    curves = plots.plot_training_curves(
        {"loss": [0.7, 0.5], "val_loss": [0.69, 0.6], "accuracy": [0.5, 0.8],
         "val_accuracy": [0.5, 0.7]}, tmp_path / "c.png")
    assert matplotlib.image.imread(curves).shape[1] > matplotlib.image.imread(path).shape[1] / 2


def test_without_matplotlib_a_clear_error(monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    try:
        plots.plot_attention(["a"], np.ones((1, 1)), "x.png")
    except plots.PlotsUnavailableError as error:
        assert "keras-attn[plots]" in str(error)
    else:
        raise AssertionError("expected PlotsUnavailableError")


def test_characters_no_font_has_are_one_warning_naming_them(tmp_path):
    """matplotlib warns once per missing character (twenty lines for one Chinese sentence in
    `keras-attn attend`); the figure functions say it once, naming the characters. Private-use
    code points: no font has them, whichever fonts this machine has."""
    tokens = ["the", "\U000F0000", "\U000F0001", "\U000F0000"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = plots.plot_attention(tokens, np.full((4, 4), 0.25), tmp_path / "h.png")
        plots.plot_confusion_matrix(np.eye(2, dtype=int), ["a", "\U000F0002"], tmp_path / "c.png")
    messages = [str(warning.message) for warning in caught]
    assert not [message for message in messages if "Glyph" in message], messages
    assert len(messages) == 2, messages
    assert "2 character(s)" in messages[0] and "\U000F0001" in messages[0]
    assert str(path) in messages[0] and "\U000F0002" in messages[1]
    assert matplotlib.image.imread(path).ndim == 3
