"""Batches of texts of similar length, each padded only to its bucket's width.

Real texts are short and unequal: padded to the longest text of a dataset, most of every
batch is padding. Here every text goes into the narrowest bucket that holds it; bucket widths
are powers of two from 16 up to the longest text (the last one is that length itself), so
XLA compiles a few shapes, not one per batch. The model masks padding, so a text's logits do
not depend on its bucket (the padding-invariance tests check it).

Each epoch's plan is drawn from (seed, epoch): texts are shuffled inside each bucket and cut
into batches; a bucket's last, short batch moves on into the next wider bucket (its texts fit
there), so only the widest bucket can end on a short batch; then the batches are shuffled.
"""

from __future__ import annotations

import numpy as np

SMALLEST_WIDTH = 16


def bucket_widths(longest: int, smallest: int = SMALLEST_WIDTH) -> list[int]:
    """Powers of two from `smallest` below `longest`, then `longest`: [16, 32, 64, 100] for 100.

    Raises:
        ValueError: `longest` or `smallest` is not a positive int.
    """
    for name, value in (("longest", longest), ("smallest", smallest)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    widths = []
    width = smallest
    while width < longest:
        widths.append(width)
        width *= 2
    return [*widths, longest]


def token_lengths(ids: np.ndarray) -> np.ndarray:
    """Real tokens per row of int ids `[n, width]` padded with 0 at the end: int64 `[n]`."""
    return np.count_nonzero(np.asarray(ids), axis=1).astype(np.int64)


def plan_batches(lengths: np.ndarray, batch_size: int, widths: list[int],
                 rng: np.random.Generator | None = None) -> list[tuple[np.ndarray, int]]:
    """Cuts example indices into batches of similar length.

    Args:
        lengths: real tokens of each example, int `[n]`; each at most `widths[-1]`.
        batch_size: the most examples in one batch.
        widths: ascending bucket widths (see `bucket_widths`).
        rng: shuffles the examples inside each bucket and the order of the batches; None keeps
            the order of the data (by bucket, then by index), as evaluation wants.

    Returns:
        [(indices int64 `[<= batch_size]`, width)]: every example exactly once, in a batch of
        width >= its length. Only the last batch of the widest bucket may be short.

    Raises:
        ValueError: an example is longer than the widest bucket.
    """
    lengths = np.asarray(lengths)
    if lengths.size and lengths.max() > widths[-1]:
        raise ValueError(f"Every example must fit the widest bucket, {widths[-1]} tokens. "
                         f"Received: an example of {int(lengths.max())} tokens")
    bucket_of = np.searchsorted(widths, lengths)  # the narrowest width >= length
    batches, carried = [], np.empty(0, dtype=np.int64)
    for bucket, width in enumerate(widths):
        members = np.flatnonzero(bucket_of == bucket)
        if rng is not None:
            members = rng.permutation(members)
        members = np.concatenate([carried, members])
        full = len(members) - len(members) % batch_size
        batches += [(members[start:start + batch_size], width)
                    for start in range(0, full, batch_size)]
        carried = members[full:]
    if carried.size:
        batches.append((carried, widths[-1]))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def batches_dataset(batches, cardinality: int, labels: bool = True, prefetch: int = 2):
    """A `tf.data.Dataset` over `batches()`, a generator function of NumPy batches: ids int32
    `[batch, width]` (and labels int32 `[batch]`), any width; `cardinality` batches a pass,
    `prefetch` batches made ahead (in a background thread, while the model trains)."""
    import tensorflow as tf

    ids_spec = tf.TensorSpec((None, None), tf.int32)
    signature = (ids_spec, tf.TensorSpec((None,), tf.int32)) if labels else ids_spec
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(cardinality))
    return dataset.prefetch(prefetch)


class LengthBatches:
    """(ids `[batch, width]`, labels `[batch]`) batches by length, as a `tf.data.Dataset`.

    `dataset()` goes to `model.fit` (as data or validation data), `evaluate` or `predict` in
    place of NumPy arrays; the batch size is its own. Each pass over the dataset (an epoch)
    draws the next plan. A `tf.data` generator with a declared `[None, None]` signature, not a
    `keras.utils.PyDataset`: Keras infers a PyDataset's signature from its first two batches,
    and would refuse every later width (and the short last batch) when those two agree.

    Args:
        ids: int token ids `[n, width]`, padded with 0 at the end (`data.encode_texts`).
        labels: int `[n]`, or None for prediction (batches are then ids only).
        batch_size: the most texts in one batch.
        shuffle: draw a new plan every epoch (training); False keeps one plan in data order.
        seed: seeds the plans: epoch e's plan comes from (seed, e).
        smallest_width: the narrowest bucket.

    Raises:
        ValueError: a bad batch size, or labels that are not one per text.

    Example:
        >>> batches = LengthBatches(encode_texts(tokenizer, texts, 256), labels, 32)
        >>> model.fit(batches.dataset(), epochs=3)                        # doctest: +SKIP
    """

    def __init__(self, ids: np.ndarray, labels: np.ndarray | None, batch_size: int,
                 shuffle: bool = True, seed: int = 0,
                 smallest_width: int = SMALLEST_WIDTH) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer. "
                             f"Received: batch_size={batch_size!r}")
        self.ids = np.asarray(ids, dtype=np.int32)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int32)
        if self.labels is not None and len(self.labels) != len(self.ids):
            raise ValueError(f"Expected one label per text. Received: {len(self.ids)} texts "
                             f"and {len(self.labels)} labels")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.lengths = token_lengths(self.ids)
        self.widths = bucket_widths(max(int(self.lengths.max(initial=1)), 1), smallest_width)
        self.epoch = 0

    def plan(self, epoch: int) -> list[tuple[np.ndarray, int]]:
        """Epoch `epoch`'s batches: [(example indices, width)] (see `plan_batches`)."""
        rng = np.random.default_rng((self.seed, epoch)) if self.shuffle else None
        return plan_batches(self.lengths, self.batch_size, self.widths, rng)

    def __len__(self) -> int:
        return -(-len(self.ids) // self.batch_size)  # every batch is full but the last

    def __iter__(self):
        """The next epoch's batches, as NumPy: ids int32 `[batch, width]` (and labels)."""
        epoch, self.epoch = self.epoch, self.epoch + 1
        for rows, width in self.plan(epoch):
            ids = self.ids[rows, :width]  # width <= the longest text <= ids.shape[1]
            yield ids if self.labels is None else (ids, self.labels[rows])

    def dataset(self, prefetch: int = 2):
        """A `tf.data.Dataset` over `iter(self)`, `prefetch` batches ahead, cardinality set.

        Each iteration of it (Keras makes one per epoch) runs the next epoch's plan.
        """
        return batches_dataset(self.__iter__, len(self), self.labels is not None, prefetch)

    def shapes(self, epoch: int = 0) -> set[tuple[int, int]]:
        """The distinct batch shapes of an epoch's plan: what XLA compiles the model for."""
        return {(len(rows), width) for rows, width in self.plan(epoch)}

    def real_tokens(self) -> int:
        """Real (non-padding) tokens in one epoch."""
        return int(self.lengths.sum())

    def padded_tokens(self, epoch: int = 0) -> int:
        """Positions computed in an epoch, padding included."""
        return sum(len(rows) * width for rows, width in self.plan(epoch))
