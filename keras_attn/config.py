"""`ModelConfig`: the hyperparameters of a keras_attn model, validated on construction."""

from __future__ import annotations

import dataclasses
from typing import Any

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")


def check_positive_int(name: str, value: Any) -> None:
    """Raises ValueError unless `value` is a positive int (bools are not ints here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Received an invalid value for argument {name}, expected a positive integer. "
            f"Received: {name}={value!r}"
        )


def check_dropout(name: str, value: Any) -> None:
    """Raises ValueError unless `value` is a float rate in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"Received an invalid value for argument {name}, expected a rate in [0, 1). "
            f"Received: {name}={value!r}"
        )


def check_activation(name: str, value: Any) -> None:
    """Raises ValueError unless `value` names an activation that exports through tf2onnx."""
    if value not in ACTIVATIONS:
        raise ValueError(
            f"Received an invalid value for argument {name}, expected one of {ACTIVATIONS}. "
            f"Received: {name}={value!r}"
        )


def check_divisible(d_model: int, num_heads: int) -> None:
    """Raises ValueError unless `num_heads` splits `d_model` into equal heads."""
    if d_model % num_heads:
        raise ValueError(
            f"d_model must be divisible by num_heads so that every head gets d_model // "
            f"num_heads dimensions. Received: d_model={d_model}, num_heads={num_heads}"
        )


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters shared by `build_classifier` and `build_language_model`.

    Args:
        vocab_size: number of token ids, including padding id 0.
        max_len: the walkthrough's N: number of learned position vectors, and so the
            longest sequence the model accepts.
        d_model: the walkthrough's d: width of every token vector.
        num_heads: attention heads per block; must divide d_model.
        ff_dim: hidden width of each feed-forward network.
        num_layers: number of transformer blocks.
        num_classes: classifier outputs (the language model predicts vocab_size instead).
        dropout: dropout rate in [0, 1) used in attention, feed-forward and residuals.
        activation: feed-forward non-linearity: "relu", "gelu" (erf form) or "gelu_tanh".
        norm_first: pre-norm blocks when True, post-norm (the original transformer) when False.

    Example:
        >>> ModelConfig(vocab_size=1000, max_len=64, d_model=64, num_heads=2, ff_dim=128,
        ...             num_layers=1, num_classes=2).d_model
        64
    """

    vocab_size: int
    max_len: int
    d_model: int
    num_heads: int
    ff_dim: int
    num_layers: int
    num_classes: int
    dropout: float = 0.0
    activation: str = "relu"
    norm_first: bool = False

    def __post_init__(self) -> None:
        for name in ("max_len", "d_model", "num_heads", "ff_dim", "num_layers", "num_classes"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("vocab_size", self.vocab_size)
        if self.vocab_size < 2:
            raise ValueError(
                "vocab_size must be at least 2: id 0 is padding and a model needs at least "
                f"one real token. Received: vocab_size={self.vocab_size}"
            )
        check_divisible(self.d_model, self.num_heads)
        check_dropout("dropout", self.dropout)
        check_activation("activation", self.activation)
        if not isinstance(self.norm_first, bool):
            raise ValueError(
                f"norm_first must be True or False. Received: norm_first={self.norm_first!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Builds a config from `to_dict()` output; unknown keys are an error."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown ModelConfig fields {unknown}; allowed fields are {sorted(known)}. "
                f"Received: {values!r}"
            )
        return cls(**values)
