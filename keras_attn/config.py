"""`ModelConfig`: the hyperparameters of a keras_attn model, validated on construction."""

from __future__ import annotations

import dataclasses
from typing import Any

from export.artifact.tokenizer_choices import DEFAULT_MODEL, DEFAULT_VOCAB_SIZE
from export.artifact.tokenizer_choices import MODELS as TOKENIZER_MODELS

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")
POOLINGS = ("mean", "first", "token")
# "balanced": each class weighs n / (classes * count), as scikit-learn's class_weight="balanced".
CLASS_WEIGHTS = ("none", "balanced")
# What early stopping watches and the kept model is the best of (Keras's log names).
MONITORS = ("val_loss", "val_accuracy")


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


def check_bool(name: str, value: Any) -> None:
    """Raises ValueError unless `value` is True or False (a string "False" is not)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False. Received: {name}={value!r}")


def check_pooling(pooling: Any, readout_token_id: Any, vocab_size: int) -> None:
    """Raises ValueError unless `pooling` is one of `POOLINGS` and `readout_token_id` is an id
    in [1, vocab_size) exactly when pooling is "token"."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}. Received: pooling={pooling!r}")
    if pooling != "token":
        if readout_token_id is not None:
            raise ValueError("readout_token_id is read by pooling='token' only. Received: "
                             f"pooling={pooling!r}, readout_token_id={readout_token_id!r}")
        return
    if isinstance(readout_token_id, bool) or not isinstance(readout_token_id, int) \
            or not 1 <= readout_token_id < vocab_size:
        raise ValueError(f"pooling='token' reads at readout_token_id, an id in [1, "
                         f"vocab_size={vocab_size}) (0 is padding). "
                         f"Received: readout_token_id={readout_token_id!r}")


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
        dropout: dropout rate in [0, 1) on the embeddings and on each sub-layer's output
            (after attention and after the feed-forward network), before the residual add,
            as keras.io's transformer and BERT place it.
        attention_dropout: dropout rate in [0, 1) on the attention weights
            `[batch, heads, n, n]` (heads x n random numbers per token, against d_model for a
            sub-layer's output). 0.0 by default: the README gives the speed and accuracy
            measured with and without it.
        activation: feed-forward non-linearity: "relu", "gelu" (erf form) or "gelu_tanh".
        norm_first: pre-norm blocks when True, post-norm (the original transformer) when False.
        use_causal_mask: `build_classifier` only: when True, position i attends to positions
            <= i, as in the language model (a classifier fine-tuned from one, README
            "Pre-training a classifier"); `build_language_model` is causal whatever this says.
        pooling: `build_classifier` only: how the sequence becomes one vector for the linear
            head. "mean" (the default): the masked mean over real tokens. "first": the vector
            at position 0 (BERT's readout at its leading [CLS]). "token": the vector at the
            first position holding `readout_token_id`, or at the last real token where a
            sequence has none (Hugging Face's GPT-2 classifier readout); see
            `keras_attn.layers.pooling.TokenReadout`.
        readout_token_id: the id "token" pooling reads at (e.g. the id of "it"); None
            otherwise.

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
    attention_dropout: float = 0.0
    use_causal_mask: bool = False
    pooling: str = "mean"
    readout_token_id: int | None = None

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
        check_dropout("attention_dropout", self.attention_dropout)
        check_activation("activation", self.activation)
        check_bool("norm_first", self.norm_first)
        check_bool("use_causal_mask", self.use_causal_mask)
        check_pooling(self.pooling, self.readout_token_id, self.vocab_size)

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Builds a config from `to_dict()` output; unknown keys are an error."""
        fields = dataclasses.fields(cls)
        known = {field.name for field in fields}
        required = {field.name for field in fields if field.default is dataclasses.MISSING}
        unknown, missing = sorted(set(values) - known), sorted(required - set(values))
        if unknown or missing:
            raise ValueError(
                f"ModelConfig fields: unknown {unknown}, missing {missing}; allowed fields are "
                f"{sorted(known)}, of which {sorted(required)} are required. Received: {values!r}"
            )
        return cls(**values)


class ReadoutTokenError(ValueError):
    """`TrainSettings.readout_token` is not one token of the trained vocabulary."""


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Hyperparameters of a training run (`keras_attn.training.classifier.train_classifier`).

    The model's shape comes from here and from the data (vocabulary size, class count).
    """

    # Defaults measured on real text (README "Defaults, measured"): 12-language identification
    # on the fortune corpora rose from 0.973 to 0.983-0.987 (seeds 0-2, deterministic
    # tokenizer) with these, still 0.2-0.9 points below the TF-IDF baseline.
    max_len: int = 128
    d_model: int = 64
    num_heads: int = 2
    ff_dim: int = 128
    num_layers: int = 2
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation: str = "relu"
    norm_first: bool = False
    use_causal_mask: bool = False
    tokenizer: str = DEFAULT_MODEL
    vocab_size: int = DEFAULT_VOCAB_SIZE
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_fraction: float = 0.05
    class_weight: str = "balanced"
    patience: int = 6
    seed: int = 0
    jit_compile: bool = True
    # The classifier's readout (`ModelConfig.pooling`); "token" reads at the id the trained
    # tokenizer gives `readout_token` (`classifier_config`). Language models ignore both.
    pooling: str = "mean"
    readout_token: str | None = None
    # Which validation figure picks the epoch kept and stops training (`MONITORS`); language
    # models watch val_loss.
    monitor: str = "val_loss"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "epochs", "batch_size", "patience"):
            check_positive_int(name, getattr(self, name))
        if self.vocab_size < 3:
            raise ValueError("vocab_size must be at least 3 (padding, unknown and one token). "
                             f"Received: vocab_size={self.vocab_size!r}")
        if self.tokenizer not in TOKENIZER_MODELS:
            raise ValueError(f"tokenizer must be one of {TOKENIZER_MODELS}. "
                             f"Received: tokenizer={self.tokenizer!r}")
        if isinstance(self.learning_rate, bool) or not isinstance(
            self.learning_rate, (int, float)
        ) or not self.learning_rate > 0:
            raise ValueError(
                f"learning_rate must be a number above 0. Received: "
                f"learning_rate={self.learning_rate!r}"
            )
        if isinstance(self.warmup_fraction, bool) or not isinstance(
                self.warmup_fraction, (int, float)) or not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be a number in [0, 1), the share of the "
                             f"run's steps spent warming up. "
                             f"Received: warmup_fraction={self.warmup_fraction!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {MONITORS}. "
                             f"Received: monitor={self.monitor!r}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"class_weight must be one of {CLASS_WEIGHTS}. "
                             f"Received: class_weight={self.class_weight!r}")
        check_bool("jit_compile", self.jit_compile)
        if self.pooling == "token" and (not isinstance(self.readout_token, str)
                                        or not self.readout_token.strip()):
            raise ValueError("pooling='token' reads at readout_token, a word of the training "
                             "texts (e.g. readout_token='it'). "
                             f"Received: readout_token={self.readout_token!r}")
        if self.pooling != "token" and self.readout_token is not None:
            raise ValueError("readout_token is read by pooling='token' only. Received: "
                             f"pooling={self.pooling!r}, readout_token={self.readout_token!r}")
        # the model fields, checked now (a readout token's id is known once a tokenizer is)
        self.model_config(vocab_size=2, num_classes=2,
                          readout_token_id=1 if self.pooling == "token" else None)

    def classifier_config(self, tokenizer: Any, num_classes: int) -> ModelConfig:
        """The classifier's `ModelConfig` for a trained tokenizer (an
        `export.artifact.tokenizer.Tokenizer`): its vocabulary, and for pooling "token" the id
        it gives `readout_token`.

        Raises:
            ReadoutTokenError: `readout_token` is not one known token of `tokenizer`.
        """
        readout_token_id = None
        if self.pooling == "token":
            try:
                readout_token_id = tokenizer.token_id(self.readout_token)
            except ValueError as error:
                raise ReadoutTokenError(f"readout_token={self.readout_token!r} cannot be read "
                                        f"at: {error}") from None
        return self.model_config(tokenizer.vocab_size, num_classes, readout_token_id)

    def model_config(self, vocab_size: int, num_classes: int,
                     readout_token_id: int | None = None) -> ModelConfig:
        """The `ModelConfig` of these settings for a vocabulary and a class count (and the
        readout token's id, for pooling "token")."""
        return ModelConfig(vocab_size=vocab_size, max_len=self.max_len, d_model=self.d_model,
                           num_heads=self.num_heads, ff_dim=self.ff_dim,
                           num_layers=self.num_layers, num_classes=num_classes,
                           dropout=self.dropout, activation=self.activation,
                           norm_first=self.norm_first,
                           attention_dropout=self.attention_dropout,
                           use_causal_mask=self.use_causal_mask, pooling=self.pooling,
                           readout_token_id=readout_token_id)
