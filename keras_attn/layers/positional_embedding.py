"""Walkthrough steps 2-3: token vectors plus N learned position vectors."""

import keras
from keras import ops

from keras_attn.config import check_bool, check_positive_int
from keras_attn.layers.token_checks import check_token_ids


@keras.saving.register_keras_serializable(package="keras_attn")
class PositionalEmbedding(keras.layers.Layer):
    """Token embedding plus a learned position embedding, one vector per position.

    Walkthrough step 2: "we would add a position encoding vector which is basically N
    randomly initialized vectors that will also be trained". Position i gets the same vector
    in every sequence, and N (`max_len`) is the longest sequence the model accepts.
    Step 3: the result is x_i = token_embeddings[id_i] + position_embeddings[i].

    Args:
        vocab_size: number of token ids; ids must lie in [0, vocab_size).
        max_len: N, the number of learned position vectors.
        d_model: d, the width of every vector.
        mask_zero: when True, id 0 is padding and `compute_mask` marks it.
        embeddings_initializer: initializer of both tables.

    Call arguments:
        token_ids: int tensor `[batch, n]` with n <= max_len.

    Returns:
        float tensor `[batch, n, d_model]`.

    Example:
        >>> layer = PositionalEmbedding(vocab_size=100, max_len=8, d_model=4)
        >>> layer(np.array([[5, 7, 0]])).shape  # doctest: +SKIP
        TensorShape([1, 3, 4])
    """

    def __init__(
        self,
        vocab_size,
        max_len,
        d_model,
        mask_zero=True,
        embeddings_initializer="random_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("vocab_size", vocab_size)
        check_positive_int("max_len", max_len)
        check_positive_int("d_model", d_model)
        check_bool("mask_zero", mask_zero)
        self.vocab_size = vocab_size
        self.max_len = max_len
        self.d_model = d_model
        self.mask_zero = mask_zero
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.supports_masking = mask_zero

    def build(self, input_shape=None):
        self.token_embeddings = self.add_weight(
            name="token_embeddings",
            shape=(self.vocab_size, self.d_model),
            initializer=self.embeddings_initializer,
        )
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(self.max_len, self.d_model),
            initializer=self.embeddings_initializer,
        )

    def call(self, token_ids):
        token_ids = check_token_ids(token_ids, self.vocab_size, self.max_len)
        length = ops.shape(token_ids)[1]
        # Negative ids would wrap around silently in `ops.take`; send them out of range so
        # that the lookup fails loudly instead of reading another token's vector.
        token_ids = ops.where(ops.less(token_ids, 0), self.vocab_size, token_ids)
        tokens = ops.take(self.token_embeddings, token_ids, axis=0)  # [b, n, d]
        # The table as a tensor: JAX (0.10) no longer turns a Keras variable into an array
        # inside `lax.dynamic_slice` under jit.
        table = ops.convert_to_tensor(self.position_embeddings)  # [max_len, d]
        positions = ops.slice(table, (0, 0), (length, self.d_model))  # [n, d]
        return tokens + positions  # x_i: static token vector + the vector of position i

    def compute_mask(self, token_ids, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(token_ids, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.d_model)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "max_len": self.max_len,
                "d_model": self.d_model,
                "mask_zero": self.mask_zero,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config
