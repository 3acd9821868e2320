"""How much "it" attends to the noun it refers to: the walkthrough's claim, measured.

The walkthrough says self-attention makes the vector of "it" in "The dog loved the toy, it was
very excited." "more influenced by the presence of the word 'dog'". On the reference task
(`keras_attn.data.reference_task`) that is a number: for every sentence, the attention weight
in row "it" on the column of its referent (the animal when the adjective is animate, else the
object) against the column of the other noun. `referent_attention` computes it for each block
and head of a model and reports the head that carries the referent: the one whose "it" row
gives the referent the most weight beyond what it gives the other noun (a head that looks at
both nouns alike tells them apart no better than a uniform one).

A uniform head puts ``1 / n`` on every one of a sentence's ``n`` tokens (about 1/16 on the
task), and the referent ahead of the other noun in none of them (a tie is not ahead).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from keras_attn.data.records import encode_texts
from keras_attn.data.reference_task import ANIMALS, ANIMATE_ADJECTIVES, OBJECTS
from keras_attn.layers.positional_embedding import PositionalEmbedding
from keras_attn.models.attention_maps import attention_maps


@dataclasses.dataclass(frozen=True)
class ReferentAttention:
    """The head that carries the referent (the most weight on it beyond the other noun's,
    on average over `sentences`), and what it gives the referent.

    Attributes:
        block, head: where that head is (0-based).
        mean_weight: its mean attention weight from "it" onto the referent, in [0, 1].
        ahead_share: the share of sentences in which it gives the referent more weight than
            the other noun, in [0, 1].
        uniform_weight: what a uniform head gives, the mean over sentences of ``1 / n``.
        sentences: how many sentences were measured.
        per_head_mean: the mean referent weight of every head, `[blocks, heads]`.
        per_head_margin: the mean referent weight minus the mean weight on the other noun, of
            every head, `[blocks, heads]`; the head reported has the largest.
    """

    block: int
    head: int
    mean_weight: float
    ahead_share: float
    uniform_weight: float
    sentences: int
    per_head_mean: np.ndarray
    per_head_margin: np.ndarray

    def summary(self) -> str:
        """One line, e.g. ``block 1, head 0: 0.31 of "it"'s attention on its referent ..."""
        return (f"block {self.block}, head {self.head}: {self.mean_weight:.2f} of \"it\"'s "
                f"attention on its referent on average (uniform: {self.uniform_weight:.2f}), "
                f"the referent ahead of the other noun in {self.ahead_share:.0%} of "
                f"{self.sentences} held-out sentences")


def referent_positions(tokens: Sequence[str]) -> tuple[int, int, int]:
    """(position of "it", of its referent noun, of the other noun) in one task sentence.

    Args:
        tokens: the sentence's tokens, as `Tokenizer.tokens` shows them (lowercase words).

    Raises:
        ValueError: the tokens are not a reference-task sentence (one "it", one animal, one
            object, and the adjective after "very").
    """
    animals = [i for i, token in enumerate(tokens) if token in ANIMALS]
    objects = [i for i, token in enumerate(tokens) if token in OBJECTS]
    its = [i for i, token in enumerate(tokens) if token == "it"]
    if len(animals) != 1 or len(objects) != 1 or len(its) != 1 or its[0] + 3 >= len(tokens) \
            or tokens[its[0] + 2] != "very":
        raise ValueError("Expected a reference-task sentence: one animal, one object, then "
                         f"'it was very <adjective>'. Received: tokens {list(tokens)}")
    animate = tokens[its[0] + 3] in ANIMATE_ADJECTIVES
    referent, other = (animals[0], objects[0]) if animate else (objects[0], animals[0])
    return its[0], referent, other


def referent_attention(model, tokenizer, texts: Sequence[str],
                       batch_size: int = 256) -> ReferentAttention:
    """Measures, for every block and head, the attention from "it" onto its referent.

    Args:
        model: a keras_attn classifier or language model.
        tokenizer: its `export.artifact.tokenizer.Tokenizer`.
        texts: reference-task sentences (`make_reference_task(...).texts`), held out.
        batch_size: sentences per forward pass.

    Returns:
        A `ReferentAttention` for the head with the largest margin of referent weight over the
        other noun's.

    Raises:
        ValueError: no text, or a text that is not a reference-task sentence.
    """
    if not texts:
        raise ValueError("Expected at least one sentence to measure. Received: no text")
    max_len = next(layer.max_len for layer in model.layers
                   if isinstance(layer, PositionalEmbedding))
    ids = encode_texts(tokenizer, list(texts), max_len)
    rows = np.arange(len(ids))
    it, referent, other = np.array([referent_positions(tokenizer.tokens(row)) for row in ids]).T
    on_referent, on_other = [], []  # per batch: [blocks, heads, batch]
    for start in range(0, len(ids), batch_size):
        part = slice(start, start + batch_size)
        maps = np.stack(attention_maps(model, ids[part]))  # [blocks, batch, heads, n, n]
        on_referent.append(maps[:, rows[part] - start, :, it[part], referent[part]])
        on_other.append(maps[:, rows[part] - start, :, it[part], other[part]])
    # Advanced indexing puts the batch axis first: [batch, blocks, heads].
    on_referent, on_other = np.concatenate(on_referent), np.concatenate(on_other)
    per_head, margin = on_referent.mean(axis=0), (on_referent - on_other).mean(axis=0)
    block, head = (int(i) for i in np.unravel_index(np.argmax(margin), margin.shape))
    lengths = np.count_nonzero(ids, axis=1)
    return ReferentAttention(
        block=block, head=head, mean_weight=float(per_head[block, head]),
        ahead_share=float(np.mean(on_referent[:, block, head] > on_other[:, block, head])),
        uniform_weight=float(np.mean(1.0 / lengths)), sentences=len(ids),
        per_head_mean=per_head, per_head_margin=margin)
