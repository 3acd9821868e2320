"""ModelConfig validation: every bad value names the field, the allowed range and the value."""

import pytest

import keras_attn as ka

GOOD = dict(vocab_size=100, max_len=16, d_model=32, num_heads=4, ff_dim=64, num_layers=2,
            num_classes=3)


def test_round_trip():
    config = ka.ModelConfig(**GOOD, dropout=0.1, activation="gelu", norm_first=True)
    assert ka.ModelConfig.from_dict(config.to_dict()) == config


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
    ("activation", "tanh", "one of"),
    ("norm_first", "yes", "True or False"),
])
def test_bad_values_are_named(field, value, message):
    with pytest.raises(ValueError, match=message) as error:
        ka.ModelConfig(**{**GOOD, field: value})
    assert field in str(error.value) and repr(value).strip("'") in str(error.value)


def test_unknown_fields_are_rejected():
    with pytest.raises(ValueError, match="Unknown ModelConfig fields \\['heads'\\]"):
        ka.ModelConfig.from_dict({**GOOD, "heads": 2})
