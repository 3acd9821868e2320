"""Figures: PNGs that open, with the right content size."""

import matplotlib.image
import numpy as np

from keras_attn import plots


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
