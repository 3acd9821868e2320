"""Model builders: the layers assembled into plain functional `keras.Model`s."""

from __future__ import annotations

import keras

from keras_attn.config import ModelConfig
from keras_attn.layers.block import TransformerBlock
from keras_attn.layers.masking import HALF_PRECISION, PaddingMask
from keras_attn.layers.pooling import MaskedMeanPooling, TokenReadout
from keras_attn.layers.positional_embedding import PositionalEmbedding
from keras_attn.models.checked_model import CheckedModel

CLASSIFIER = "classifier"
LANGUAGE_MODEL = "language_model"


def _encode(config: ModelConfig, use_causal_mask: bool):
    """token_ids -> contextual vectors `[batch, n, d_model]`, plus the inputs and padding mask."""
    # int64: a functional model casts its inputs to the declared dtype before any layer runs,
    # and int64 -> int32 would wrap an id of 2**32 + 5 around to 5 before it could be checked.
    # int32 ids widen to int64 losslessly.
    token_ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")
    # Computed once and passed explicitly: Keras 3 loses implicit masks through `x + y`.
    padding_mask = PaddingMask(name="padding_mask")(token_ids)
    x = PositionalEmbedding(
        config.vocab_size, config.max_len, config.d_model, name="embedding"
    )(token_ids)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(x)
    for index in range(config.num_layers):
        x = TransformerBlock(
            config.num_heads,
            config.ff_dim,
            dropout=config.dropout,
            attention_dropout=config.attention_dropout,
            activation=config.activation,
            norm_first=config.norm_first,
            use_causal_mask=use_causal_mask,
            name=f"block_{index}",
        )(x, padding_mask=padding_mask)
    if config.norm_first:  # pre-norm blocks leave the last residual stream un-normalised
        x = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    return token_ids, padding_mask, x


def _logits_dtype():
    """float32 under a mixed-precision policy (Keras's advice for the last layer: the loss and
    every consumer get float32 logits), else the global policy (float32, or float64)."""
    policy = keras.config.dtype_policy()
    return "float32" if policy.compute_dtype in HALF_PRECISION else policy


def build_classifier(config: ModelConfig) -> keras.Model:
    """A sequence classifier: blocks, a readout of one vector per sequence (`config.pooling`:
    the masked mean over real tokens by default), then a linear head.

    Its attention is bidirectional, or causal when `config.use_causal_mask` (a classifier
    fine-tuned from a language model, `keras_attn.training.pretrained`).

    Args:
        config: the model's hyperparameters.

    Returns:
        A functional `keras.Model` (a `CheckedModel`: token ids are checked before any cast,
        on every backend) named "classifier": input "token_ids" int64 `[batch, None]` (int32
        ids widen losslessly) -> output "logits" float32 `[batch, num_classes]` (float64
        under a float64 policy). Compile and `fit` it.

    Example:
        >>> model = build_classifier(ModelConfig(100, 16, 32, 2, 64, 1, num_classes=3))
        >>> model.compile(optimizer="adam",
        ...               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """
    token_ids, padding_mask, x = _encode(config, use_causal_mask=config.use_causal_mask)
    if config.pooling == "mean":
        pooled = MaskedMeanPooling(name="pool")(x, padding_mask=padding_mask)
    else:  # "first" reads position 0, "token" the first position of readout_token_id
        pooled = TokenReadout(config.readout_token_id, name="pool")(x, token_ids, padding_mask)
    logits = keras.layers.Dense(config.num_classes, name="logits", dtype=_logits_dtype())(pooled)
    return CheckedModel(token_ids, logits, name=CLASSIFIER)


def build_language_model(config: ModelConfig) -> keras.Model:
    """A causal language model: position i sees tokens 0..i and predicts token i + 1.

    Args:
        config: the model's hyperparameters (num_classes is not used).

    Returns:
        A functional `keras.Model` named "language_model": input "token_ids" int64
        `[batch, None]` -> output "logits" float32 `[batch, None, vocab_size]`.
    """
    token_ids, _, x = _encode(config, use_causal_mask=True)
    logits = keras.layers.Dense(config.vocab_size, name="logits", dtype=_logits_dtype())(x)
    return CheckedModel(token_ids, logits, name=LANGUAGE_MODEL)


def model_task(model: keras.Model) -> str:
    """"language_model" when the logits have a sequence axis, else "classifier"."""
    return LANGUAGE_MODEL if len(model.outputs[0].shape) == 3 else CLASSIFIER


def config_from_model(model: keras.Model) -> ModelConfig:
    """Recovers the `ModelConfig` of a model made by `build_classifier`/`build_language_model`.

    Works on a model loaded from a `.keras` file. For a language model, num_classes is
    reported as vocab_size: it classifies every position over the vocabulary.

    Raises:
        ValueError: when `model` was not built by keras_attn's builders.
    """
    embeddings = [layer for layer in model.layers if isinstance(layer, PositionalEmbedding)]
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerBlock)]
    if len(embeddings) != 1 or not blocks:
        raise ValueError(
            "Expected a model built by keras_attn.build_classifier or build_language_model, "
            "with one PositionalEmbedding and at least one TransformerBlock. "
            f"Received: model {model.name!r} with layers {[layer.name for layer in model.layers]}"
        )
    embedding, block = embeddings[0], blocks[0]
    return ModelConfig(
        vocab_size=embedding.vocab_size,
        max_len=embedding.max_len,
        d_model=embedding.d_model,
        num_heads=block.num_heads,
        ff_dim=block.ff_dim,
        num_layers=len(blocks),
        num_classes=int(model.outputs[0].shape[-1]),
        dropout=block.dropout,
        attention_dropout=block.attention_dropout,
        activation=block.activation,
        norm_first=block.norm_first,
        # a language model is causal by construction; its config leaves the flag at False
        use_causal_mask=block.use_causal_mask and model_task(model) == CLASSIFIER,
        **_pooling_of(model),
    )


def _pooling_of(model: keras.Model) -> dict:
    """The `pooling` and `readout_token_id` fields of a classifier (a language model has no
    readout: the defaults)."""
    readouts = [layer for layer in model.layers if isinstance(layer, TokenReadout)]
    if not readouts:
        return {}
    token_id = readouts[0].token_id
    return {"pooling": "first" if token_id is None else "token", "readout_token_id": token_id}


def rebuild(model: keras.Model, dtype_policy: str = "float32") -> keras.Model:
    """A fresh, uncompiled copy of a keras_attn model under another dtype policy, same weights.

    Export uses it to ship float32 whatever policy the model was trained under (a
    mixed-precision model's variables are float32 already), and the parity battery to build a
    float64 twin. The copy is not compiled, so it carries no `jit_compile` setting.

    Raises:
        ValueError: when `model` was not built by keras_attn's builders.
    """
    builder = build_language_model if model_task(model) == LANGUAGE_MODEL else build_classifier
    config = config_from_model(model)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype_policy)
    try:
        twin = builder(config)
    finally:
        keras.config.set_dtype_policy(previous)
    twin.set_weights([keras.ops.convert_to_numpy(weight).astype(twin_weight.dtype)
                      for weight, twin_weight in zip(model.weights, twin.weights, strict=True)])
    return twin


def load_model(path) -> keras.Model:
    """Loads a `.keras` file saved from a keras_attn model, with `safe_mode=True`.

    A model saved after `compile(jit_compile=True)` would otherwise predict under XLA, which
    clamps out-of-range ids instead of rejecting them: the loaded model runs without XLA unless
    you set `model.jit_compile = True` yourself.
    """
    model = keras.models.load_model(path, safe_mode=True)
    if getattr(model, "compiled", False):
        model.jit_compile = False
    return model
