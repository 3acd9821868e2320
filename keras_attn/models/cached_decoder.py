"""Text generation from a causal language model in Keras, with a key/value cache per block.

The cache: every `TransformerBlock` takes and returns one tensor
`[batch, 2, num_heads, past, head_dim]` (keys at index 0, values at 1) for the `past` tokens
already read. A step runs the model on the new tokens only: their embeddings (token vector +
the vector of their absolute position), each block with its cache, the final norm and the
logits. Prefill reads the whole prompt in one step; every later step reads one token, which
attends to the cached keys instead of recomputing them: O(n) per token instead of O(n^2).

The decoding loop and the samplers (greedy, temperature, top-k, top-p, seeded) are
`export.runtime.sampling`'s, shared with onnxruntime. At `max_len` generation stops and says so.

Example:
    >>> result = generate(model, tokenizer, "the dog", max_new_tokens=20)
    >>> print(result.text)
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from export.runtime.sampling import GeneratedText, generate_text
from keras_attn.layers.block import TransformerBlock
from keras_attn.layers.positional_embedding import PositionalEmbedding
from keras_attn.models.builders import LANGUAGE_MODEL, model_task


class CachedDecoder:
    """The layers of a language model, run a few tokens at a time with a key/value cache.

    Args:
        model: a language model made by `build_language_model` (or loaded from its file).

    Raises:
        ValueError: `model` is not a keras_attn language model.

    Example:
        >>> decoder = CachedDecoder(model)
        >>> logits, cache = decoder.step(np.array([[5, 9]]), np.array([[0, 1]]),
        ...                              decoder.empty_cache())
        >>> logits.shape   # [batch, new, vocab_size]
        (1, 2, 100)
    """

    def __init__(self, model: keras.Model) -> None:
        if not isinstance(model, keras.Model) or model_task(model) != LANGUAGE_MODEL:
            raise ValueError("CachedDecoder needs a language model made by "
                             "keras_attn.build_language_model. Received: "
                             f"{getattr(model, 'name', type(model).__name__)!r}")
        self.embedding = next(layer for layer in model.layers
                              if isinstance(layer, PositionalEmbedding))
        self.blocks = [layer for layer in model.layers if isinstance(layer, TransformerBlock)]
        names = {layer.name: layer for layer in model.layers}
        self.final_norm = names.get("final_norm")
        self.logits = names["logits"]
        self.max_len = self.embedding.max_len
        self.vocab_size = int(model.outputs[0].shape[-1])
        attention = self.blocks[0].attention
        self.num_heads, self.head_dim = attention.num_heads, attention.head_dim
        self._compiled = self._compile()

    def _compile(self):
        """The step as one TensorFlow graph when Keras runs on TensorFlow: an eager step
        calls ~40 layers one by one and costs ~100 ms; traced once (any batch, new and past
        lengths), it costs ~1 ms. Other backends run it eagerly: fine on torch (~0.16 s per
        token for a 2-block model), slow on JAX, which compiles for every new shape and so
        for every cache length (~4.6 s per token; README, "Not done: fast cached generation
        in Keras on JAX")."""
        if keras.backend.backend() != "tensorflow":
            return self._step
        import tensorflow as tf

        cache_spec = tf.TensorSpec([None, 2, self.num_heads, None, self.head_dim], "float32")
        return tf.function(self._step, input_signature=[
            tf.TensorSpec([None, None], "int64"), tf.TensorSpec([None, None], "int64"),
            [cache_spec] * len(self.blocks)])

    def empty_cache(self, batch: int = 1) -> list[np.ndarray]:
        """One empty cache per block: float32 `[batch, 2, num_heads, 0, head_dim]`."""
        return [np.zeros((batch, 2, self.num_heads, 0, self.head_dim), dtype=np.float32)
                for _ in self.blocks]

    def step(self, token_ids, position_ids, cache):
        """Runs the model on new tokens after the cached ones.

        Args:
            token_ids: int `[batch, new]`.
            position_ids: int `[batch, new]`, the tokens' absolute positions (past .. past +
                new - 1), each < max_len.
            cache: one `[batch, 2, num_heads, past, head_dim]` per block.

        Returns:
            (logits float32 NumPy `[batch, new, vocab_size]`, the updated cache, one
            `[batch, 2, num_heads, past + new, head_dim]` tensor per block).
        """
        token_ids = np.asarray(token_ids, dtype=np.int64)
        position_ids = np.asarray(position_ids, dtype=np.int64)
        logits, cache = self._compiled(token_ids, position_ids, list(cache))
        return ops.convert_to_numpy(logits), cache

    def _step(self, token_ids, position_ids, cache):
        # Step 3 of the walkthrough, at absolute positions: x_i = token vector + position vector.
        x = ops.take(self.embedding.token_embeddings, ops.convert_to_tensor(token_ids), axis=0)
        x = x + ops.take(self.embedding.position_embeddings, ops.convert_to_tensor(position_ids),
                         axis=0)  # [b, new, d_model]
        updated = []
        for block, block_cache in zip(self.blocks, cache, strict=True):
            x, block_cache = block(x, cache=ops.convert_to_tensor(block_cache))
            updated.append(block_cache)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.logits(x), updated


def generate(model: keras.Model, tokenizer, prompt: str, max_new_tokens: int,
             temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
             seed: int | None = None, *, repetition_penalty: float = 1.0,
             no_repeat_ngram_size: int = 0) -> GeneratedText:
    """Continues `prompt` with up to `max_new_tokens` tokens, reading each new token once.

    Greedy (the most likely token) when `temperature` is 0; otherwise a draw from
    softmax(logits / temperature), after keeping the `top_k` most likely tokens and the
    smallest set of them whose probability reaches `top_p`. The same `seed` gives the same
    text. Stops early at the end-of-text token, or at the model's `max_len` (see
    `GeneratedText.stop_reason` and `.message`).

    Args:
        model: a language model (`build_language_model`, or a `train-lm` run's model.keras).
        tokenizer: its `export.artifact.tokenizer.Tokenizer`.
        prompt: the text to continue.
        max_new_tokens: the most tokens to add (>= 0).
        temperature: >= 0; 0 is greedy.
        top_k: a positive int, or None (no top-k filter); not with temperature 0.
        top_p: in (0, 1], or None (no nucleus filter); not with temperature 0.
        seed: an int >= 0 for reproducible sampling, or None.
        repetition_penalty: > 0; above 1 discourages ids already in the text (CTRL's
            penalty, as Hugging Face applies it); 1, the default, changes nothing.
        no_repeat_ngram_size: n > 0 never repeats an n-gram of the text; 0 (default): off.

    Returns:
        A `GeneratedText`: `.text` (prompt + continuation), `.continuation`, `.new_ids`,
        `.stop_reason` ("max_new_tokens", "max_len" or "end_of_text"), `.message`.

    Raises:
        TypeError: `prompt` is not a str.
        ValueError: a bad argument (named, with what is allowed and what was received), a
            prompt longer than max_len tokens, a model that is not a language model, or a
            tokenizer whose vocabulary does not match the model.
    """
    decoder = CachedDecoder(model)
    return generate_text(decoder.step, decoder.empty_cache(), tokenizer, prompt,
                         decoder.max_len, decoder.vocab_size, max_new_tokens, temperature,
                         top_k, top_p, seed, repetition_penalty=repetition_penalty,
                         no_repeat_ngram_size=no_repeat_ngram_size)
