"""keras_attn: the attention walkthrough as custom Keras 3 layers.

Importing the package registers every layer with Keras, so `keras.models.load_model` reads
keras_attn models with `safe_mode=True`.
"""

from keras_attn.attention import MultiHeadSelfAttention, SelfAttention, scaled_dot_product_attention
from keras_attn.block import TransformerBlock
from keras_attn.config import ModelConfig
from keras_attn.feed_forward import FeedForward
from keras_attn.masking import PaddingMask
from keras_attn.models import build_classifier, build_language_model, config_from_model, model_task
from keras_attn.pooling import MaskedMeanPooling
from keras_attn.positional_embedding import PositionalEmbedding

__version__ = "0.1.0"

__all__ = [
    "FeedForward",
    "MaskedMeanPooling",
    "ModelConfig",
    "MultiHeadSelfAttention",
    "PaddingMask",
    "PositionalEmbedding",
    "SelfAttention",
    "TransformerBlock",
    "__version__",
    "build_classifier",
    "build_language_model",
    "config_from_model",
    "model_task",
    "scaled_dot_product_attention",
]
