"""keras_attn: the attention walkthrough as custom Keras 3 layers.

`import keras_attn` is light: Keras (and so TensorFlow) is imported on first use of a layer
or builder name, so that serving-side commands such as `keras-attn predict` run on
onnxruntime alone. Touching any of those names imports every layer module and CheckedModel,
which registers them with Keras; `keras_attn.load_model(path)` does that for you before
loading.
"""

import importlib

import lazy_loader

from keras_attn.config import ModelConfig

__version__ = "0.1.0"

_LAZY = {
    "layers.positional_embedding": ["PositionalEmbedding"],
    "layers.attention": ["SelfAttention", "MultiHeadSelfAttention",
                         "scaled_dot_product_attention"],
    "layers.feed_forward": ["FeedForward"],
    "layers.block": ["TransformerBlock"],
    "layers.masking": ["PaddingMask"],
    "layers.pooling": ["MaskedMeanPooling", "TokenReadout"],
    "models.builders": ["build_classifier", "build_language_model", "config_from_model",
                        "model_task", "load_model", "rebuild"],
    "models.checked_model": ["CheckedModel"],
    "models.attention_maps": ["attention_maps"],
    "models.cached_decoder": ["generate", "CachedDecoder"],
}
_lazy_getattr, __dir__, _names = lazy_loader.attach(__name__, submod_attrs=_LAZY)
__all__ = ["ModelConfig", "__version__", "register_layers", *_names]


# The modules that register classes with Keras (`register_keras_serializable`): every layer,
# and CheckedModel, the class both builders return.
_REGISTERING = [*(module for module in _LAZY if module.startswith("layers.")),
                "models.checked_model"]


def register_layers() -> None:
    """Imports every module that registers a class with Keras (the layers and `CheckedModel`),
    so that `keras.models.load_model` finds them. Nothing else: the builders, the decoder and
    the tokenizer are imported when their names are used."""
    for module in _REGISTERING:
        importlib.import_module(f"{__name__}.{module}")


def __getattr__(name):
    value = _lazy_getattr(name)  # AttributeError for a name keras_attn does not have
    register_layers()
    return value
