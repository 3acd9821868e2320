"""Walkthrough step 5: a feed-forward network with a non-linear activation."""

import keras

from keras_attn.config import check_activation, check_dropout, check_positive_int
from keras_attn.layers.activations import ACTIVATION_FUNCTIONS


@keras.saving.register_keras_serializable(package="keras_attn")
class FeedForward(keras.layers.Layer):
    """Dense -> non-linearity -> Dense back to d_model, applied to every position alone.

    Step 5: attention only re-averages values; "to help the model capture non-linear
    patterns better we add a feed-forward NN layer with a non-linear activation function".

    Args:
        hidden_dim: width of the hidden layer.
        activation: "relu", "gelu" (exact, erf form) or "gelu_tanh"; all export to ONNX.
        dropout: dropout rate after the non-linearity.

    Call arguments:
        x: float `[batch, n, d_model]`.
        training: whether dropout is active.

    Returns:
        float `[batch, n, d_model]`.

    Example:
        >>> FeedForward(hidden_dim=32, activation="gelu")(np.ones((2, 3, 8))).shape
        TensorShape([2, 3, 8])
    """

    def __init__(self, hidden_dim, activation="relu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("hidden_dim", hidden_dim)
        check_activation("activation", activation)
        check_dropout("dropout", dropout)
        self.hidden_dim = hidden_dim
        self.activation = activation
        self.dropout = dropout
        self.hidden = keras.layers.Dense(hidden_dim, name="hidden")
        self.non_linearity = ACTIVATION_FUNCTIONS[activation]
        self.hidden_dropout = keras.layers.Dropout(dropout) if dropout else None
        self.supports_masking = True  # position-wise: an implicit mask carries over

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.projection = keras.layers.Dense(input_shape[-1], name="projection")
        self.projection.build((*input_shape[:-1], self.hidden_dim))

    def call(self, x, training=None):
        x = self.non_linearity(self.hidden(x))  # [b, n, hidden_dim]
        if self.hidden_dropout is not None:
            x = self.hidden_dropout(x, training=training)
        return self.projection(x)  # back to [b, n, d_model]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"hidden_dim": self.hidden_dim, "activation": self.activation, "dropout": self.dropout}
        )
        return config
