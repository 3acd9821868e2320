"""keras_attn: the attention walkthrough as custom Keras 3 layers.

`import keras_attn` is light: Keras (and so TensorFlow) is imported on first use of a layer
or builder name, so that serving-side commands such as `keras-attn predict` run on
onnxruntime alone. Touching any of those names imports every layer module, which registers
all layers with Keras; `keras_attn.load_model(path)` does that for you before loading.
"""

import importlib

from keras_attn.config import ModelConfig

__version__ = "0.1.0"

_LAZY = {
    "PositionalEmbedding": "keras_attn.layers.positional_embedding",
    "SelfAttention": "keras_attn.layers.attention",
    "MultiHeadSelfAttention": "keras_attn.layers.attention",
    "scaled_dot_product_attention": "keras_attn.layers.attention",
    "FeedForward": "keras_attn.layers.feed_forward",
    "TransformerBlock": "keras_attn.layers.block",
    "PaddingMask": "keras_attn.layers.masking",
    "MaskedMeanPooling": "keras_attn.layers.pooling",
    "build_classifier": "keras_attn.models.builders",
    "build_language_model": "keras_attn.models.builders",
    "config_from_model": "keras_attn.models.builders",
    "model_task": "keras_attn.models.builders",
    "load_model": "keras_attn.models.builders",
    "rebuild": "keras_attn.models.builders",
    "CheckedModel": "keras_attn.models.checked_model",
    "attention_maps": "keras_attn.models.attention_maps",
    "generate": "keras_attn.models.cached_decoder",
    "CachedDecoder": "keras_attn.models.cached_decoder",
}

__all__ = ["ModelConfig", "__version__", "register_layers", *_LAZY]


def register_layers() -> None:
    """Imports every layer module, registering the layers with Keras for `load_model`."""
    for module in sorted(set(_LAZY.values())):
        importlib.import_module(module)


def __getattr__(name):
    if name in _LAZY:
        register_layers()
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_attn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
