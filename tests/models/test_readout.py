"""The classifier's readout choice (`ModelConfig.pooling`): the mean, the first position, or
the first position of a marked token (keras_attn/layers/pooling.py `TokenReadout`)."""

import json
import shutil

import keras
import numpy as np
import pytest
from export_cases import CLASSIFIER, exported
from fp32_floor import fp32_tolerance

import export
import keras_attn as ka
from keras_attn.layers.pooling import TokenReadout

MARK = 7  # the readout token of the "token" models
BASE = dict(vocab_size=40, max_len=12, d_model=16, num_heads=2, ff_dim=32, num_layers=2,
            num_classes=3)


def test_the_readout_reads_the_first_marked_position_else_the_last_real_token():
    x = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3)
    token_ids = np.array([[4, MARK, 9, MARK, 0], [4, 5, 6, 0, 0]])
    mask = token_ids != 0
    read = np.asarray(TokenReadout(MARK)(x, token_ids, mask))
    np.testing.assert_array_equal(read, np.stack([x[0, 1], x[1, 2]]))  # exact: a one-hot sum
    np.testing.assert_array_equal(np.asarray(TokenReadout()(x, token_ids, mask)), x[:, 0])


@pytest.mark.parametrize("token_id", [0, -1, True, 2.0, "it"])
def test_a_bad_token_id_is_refused(token_id):
    with pytest.raises(ValueError, match="token_id must be None .* or a positive integer"):
        TokenReadout(token_id)


@pytest.mark.parametrize(("fields", "message"), [
    ({"pooling": "max"}, r"pooling must be one of \('mean', 'first', 'token'\)\. Received: "
                         r"pooling='max'"),
    ({"pooling": "token"}, r"readout_token_id, an id in \[1, vocab_size=40\).*None"),
    ({"pooling": "token", "readout_token_id": 40}, r"Received: readout_token_id=40"),
    ({"pooling": "mean", "readout_token_id": 3}, r"read by pooling='token' only"),
])
def test_the_config_refuses_a_readout_it_cannot_build(fields, message):
    with pytest.raises(ValueError, match=message):
        ka.ModelConfig(**BASE, **fields)


@pytest.fixture(scope="module", params=["first", "token"])
def classifier(request):
    config = ka.ModelConfig(**BASE, pooling=request.param,
                            readout_token_id=MARK if request.param == "token" else None)
    keras.utils.set_random_seed(0)
    return config, ka.build_classifier(config)


def test_padding_and_batch_mates_change_no_logit(classifier):
    _, model = classifier
    rows = [np.array([[3, MARK, 5]]), np.array([[9, 8, 2, 6, 4]]), np.array([[MARK]])]
    batch = np.zeros((3, 12), "int32")
    for index, row in enumerate(rows):
        batch[index, :row.shape[1]] = row
    together = np.asarray(model(batch))
    for index, row in enumerate(rows):
        np.testing.assert_allclose(together[index], np.asarray(model(row))[0], rtol=0,
                                   atol=fp32_tolerance(model, batch[index:index + 1], row))


def test_the_readout_is_what_the_logits_depend_on(classifier):
    """A change that reaches the readout position only through attention moves the logits;
    under "token" the marked position is read, wherever it stands."""
    config, model = classifier
    base = np.array([[MARK, 3, 4, 5, 6]]) if config.pooling == "first" else np.array(
        [[3, 4, MARK, 5, 6]])
    moved = base.copy()
    moved[0, -1] = 11
    assert not np.allclose(model(base), model(moved))


def test_the_readout_survives_save_load_rebuild_and_export(classifier, tmp_path):
    config, model = classifier
    model.save(tmp_path / "c.keras")
    loaded = ka.load_model(tmp_path / "c.keras")
    assert ka.config_from_model(loaded) == config
    tokens = np.array([[3, MARK, 5, 9], [4, 4, 0, 0]])
    np.testing.assert_array_equal(loaded.predict(tokens, verbose=0),
                                  model.predict(tokens, verbose=0))
    result = export.export_model(model, tmp_path / "export")  # the parity battery runs inside
    assert result.parity.ok
    assert export.verify(result.path).ok


def test_an_export_made_before_pooling_existed_still_verifies(tmp_path):
    """Its manifest's config has no `pooling` / `readout_token_id`: a mean readout."""
    folder = shutil.copytree(exported(CLASSIFIER)[1].path, tmp_path / "1")
    manifest = json.loads((folder / "manifest.json").read_text())
    for field in ("pooling", "readout_token_id"):
        del manifest["config"][field]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert export.verify(folder).ok
    manifest["config"]["num_heads"] = 4  # a real difference is still found
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert not export.verify(folder).ok
