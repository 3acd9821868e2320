"""Feed-forward non-linearities written so that they survive tf2onnx.

Keras's exact gelu lowers to TensorFlow's `Erfc`, which tf2onnx 1.17 cannot convert, so the
exact form is written with `erf` here; `gelu_tanh` is the tanh approximation used by GPT-2.
"""

import math

from keras import ops


def gelu(x):
    """Exact gelu, x * Phi(x), in erf form: 0.5 * x * (1 + erf(x / sqrt(2)))."""
    x = ops.convert_to_tensor(x)  # a NumPy x times a torch tensor is a TypeError
    return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))


def gelu_tanh(x):
    """The tanh approximation of gelu: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))."""
    x = ops.convert_to_tensor(x)
    return 0.5 * x * (1.0 + ops.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def relu(x):
    """max(x, 0)."""
    return ops.relu(x)


ACTIVATION_FUNCTIONS = {"relu": relu, "gelu": gelu, "gelu_tanh": gelu_tanh}
