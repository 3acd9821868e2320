"""ModelConfig validation: every bad value names the field, the allowed range and the value."""

import pytest

import keras_attn as ka
import keras_attn.config

GOOD = dict(vocab_size=100, max_len=16, d_model=32, num_heads=4, ff_dim=64, num_layers=2,
            num_classes=3)


def test_round_trip():
    config = ka.ModelConfig(**GOOD, dropout=0.1, activation="gelu", norm_first=True,
                            attention_dropout=0.2)
    assert ka.ModelConfig.from_dict(config.to_dict()) == config


def test_a_config_saved_before_attention_dropout_loads_with_its_default():
    saved = {**GOOD, "dropout": 0.1, "activation": "relu", "norm_first": False}
    assert ka.ModelConfig.from_dict(saved).attention_dropout == 0.0


@pytest.mark.parametrize("field, value, message", [
    ("vocab_size", 1, "vocab_size must be at least 2"),
    ("vocab_size", "100", "positive integer"),
    ("max_len", 0, "positive integer"),
    ("d_model", -8, "positive integer"),
    ("num_heads", 3, "divisible"),
    ("ff_dim", 1.5, "positive integer"),
    ("num_layers", 0, "positive integer"),
    ("num_classes", True, "positive integer"),
    ("dropout", 1.0, r"\[0, 1\)"),
    ("dropout", -0.1, r"\[0, 1\)"),
    ("attention_dropout", 1.0, r"\[0, 1\)"),
    ("activation", "tanh", "one of"),
    ("norm_first", "yes", "True or False"),
])
def test_bad_values_are_named(field, value, message):
    with pytest.raises(ValueError, match=message) as error:
        ka.ModelConfig(**{**GOOD, field: value})
    assert field in str(error.value) and repr(value).strip("'") in str(error.value)


def test_unknown_and_missing_fields_are_rejected():
    with pytest.raises(ValueError, match="unknown \\['heads'\\], missing \\[\\]"):
        ka.ModelConfig.from_dict({**GOOD, "heads": 2})
    partial = {k: v for k, v in GOOD.items() if k != "d_model"}
    with pytest.raises(ValueError, match="unknown \\[\\], missing \\['d_model'\\]"):
        ka.ModelConfig.from_dict(partial)


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "positive integer"),
    ("batch_size", -1, "positive integer"),
    ("learning_rate", 0.0, "above 0"),
    ("jit_compile", "yes", "True or False"),
    ("d_model", 11, "divisible"),
    ("pooling", "max", "pooling must be one of \\('mean', 'first', 'token'\\)"),
    ("pooling", "token", "pooling='token' reads at readout_token, a word of the training texts"),
    ("readout_token", "it", "readout_token is read by pooling='token' only"),
])
def test_train_settings_are_validated(field, value, message):
    with pytest.raises(ValueError, match=message):
        ka.config.TrainSettings(**{field: value})


def test_the_readout_token_is_read_at_the_id_the_tokenizer_gives_it():
    from export.artifact.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["the dog loved the toy, it was very excited."] * 3,
                                model="word", vocab_size=50)
    settings = ka.config.TrainSettings(pooling="token", readout_token="it")
    config = settings.classifier_config(tokenizer, num_classes=2)
    assert config.pooling == "token" and config.readout_token_id == tokenizer.token_id("it")
    assert ka.config.TrainSettings(pooling="first").classifier_config(
        tokenizer, 2).readout_token_id is None
    with pytest.raises(ka.config.ReadoutTokenError,
                       match="readout_token='cat' cannot be read at: 'cat' is not one token"):
        ka.config.TrainSettings(pooling="token", readout_token="cat").classifier_config(
            tokenizer, 2)


@pytest.mark.parametrize("layer, kwargs", [
    ("TransformerBlock", {"num_heads": 2, "ff_dim": 4, "norm_first": "no"}),
    ("MultiHeadSelfAttention", {"num_heads": 2, "use_causal_mask": "False"}),
    ("SelfAttention", {"use_causal_mask": 1}),
    ("PositionalEmbedding", {"vocab_size": 5, "max_len": 4, "d_model": 2, "mask_zero": None}),
])
def test_layer_switches_must_be_booleans(layer, kwargs):
    with pytest.raises(ValueError, match="must be True or False"):
        getattr(ka, layer)(**kwargs)
