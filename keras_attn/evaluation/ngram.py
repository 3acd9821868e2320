"""An interpolated Kneser-Ney n-gram model over token ids: the baseline a language model's
perplexity is printed beside, on the same tokens.

Interpolated Kneser-Ney (Kneser & Ney 1995; Chen & Goodman 1998, "An Empirical Study of
Smoothing Techniques for Language Modeling", section 3.5), with one discount D at every order,
in the form of `nltk.lm.KneserNeyInterpolated` (checked equal to it on small corpora in
tests/evaluation/test_ngram.py). For a context h of n - 1 ids and the next id w:

    P(w | h) = max(c(h w) - D, 0) / c(h)  +  D * N1+(h .) / c(h) * P'(w | h[1:])

where c counts occurrences and N1+(h .) the distinct ids seen after h. The lower orders P' use
continuation counts N1+(. h w), the distinct ids seen before "h w", in place of c:

    P'(w | h) = max(N1+(. h w) - D, 0) / N1+(. h .)  +  D * N1+(h .) / N1+(. h .) * P'(w | h[1:])

down to the unigram level, which nltk leaves as N1+(. w) / N1+(. .) and which is interpolated
here with the uniform distribution over the `vocabulary_size` ids, with the same discount, so
that an id never seen in training still has a probability (`unigram_discount=0` gives nltk's):

    P'(w) = max(N1+(. w) - D, 0) / N1+(. .)  +  D * N1+(seen) / N1+(. .) / vocabulary_size

A context never seen defers to the next lower order whole (alpha 0, gamma 1), as nltk does. At
the lower orders N1+(h .) counts the ids w with N1+(. h w) > 0, so that every P(. | h) sums to
1 (nltk counts raw followers there, which differs, and sums above 1, only for an n-gram seen
at the stream's very start).
The first ids of a stream use the shorter contexts they have. NumPy and the standard library.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np


class KneserNey:
    """Interpolated Kneser-Ney of `order` over token ids.

    Args:
        order: n, the longest n-gram (>= 1); 3 is a trigram model.
        vocabulary_size: how many ids the model may give a probability to (for a language
            model's targets, every id but padding).
        discount: D in (0, 1), the same at every order (0.75, Chen & Goodman's usual value).
        unigram_discount: the discount of the unigram level; 0 gives nltk's unigram level (no
            mass for unseen ids).

    Raises:
        ValueError: an order below 1, a discount outside (0, 1), a vocabulary size below 1.
    """

    def __init__(self, order: int = 3, vocabulary_size: int = 1, discount: float = 0.75,
                 unigram_discount: float | None = None) -> None:
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be an integer >= 1. Received: order={order!r}")
        if not 0 < discount < 1:
            raise ValueError(f"discount must lie in (0, 1). Received: discount={discount!r}")
        if vocabulary_size < 1:
            raise ValueError(f"vocabulary_size must be >= 1. Received: {vocabulary_size!r}")
        self.order, self.discount, self.vocabulary_size = order, discount, vocabulary_size
        self.unigram_discount = discount if unigram_discount is None else unigram_discount

    def fit(self, stream: Sequence[int]) -> KneserNey:
        """Counts every n-gram of orders 1..n in `stream` (one sequence of ids; texts are
        joined by an end-of-text id, as `keras_attn.data.lm_windows.token_stream` gives them).

        Returns:
            self.
        """
        ids = [int(i) for i in stream]
        n = self.order
        grams = [Counter(tuple(ids[i:i + k]) for i in range(len(ids) - k + 1))
                 for k in range(n + 1)]  # grams[k]: k-gram -> count (grams[0] unused)
        self._count = grams[n]  # highest order: raw counts
        self._context_total: Counter = Counter()  # c(h), h of n - 1 ids
        self._followers: Counter = Counter()  # N1+(h .) by raw counts, h of n - 1 ids
        for gram, count in grams[n].items():
            self._context_total[gram[:-1]] += count
            self._followers[gram[:-1]] += 1
        # Lower orders: continuation counts N1+(. g) of each k-gram g, k < n, and their sums
        # per context N1+(. h .).
        self._continuation: Counter = Counter()
        self._continuation_total: Counter = Counter()
        for k in range(2, n + 1):
            for gram in grams[k]:
                self._continuation[gram[1:]] += 1
                self._continuation_total[gram[1:-1]] += 1
        # N1+(h .) at the lower orders: the ids w with N1+(. h w) > 0 (the same ids as by
        # raw counts, but for an n-gram seen only at the stream's start, with nothing before
        # it: counting those too, as nltk does, gives a distribution summing above 1).
        self._continuation_followers: Counter = Counter(
            gram[:-1] for gram in self._continuation)
        return self

    def probability(self, word: int, context: Sequence[int] = ()) -> float:
        """P(word | the last n - 1 ids of context)."""
        context = tuple(int(i) for i in context)[max(0, len(context) - self.order + 1):]
        return self._interpolated(int(word), context, highest=True)

    def _interpolated(self, word: int, context: tuple, highest: bool) -> float:
        if not context:
            return self._unigram(word)
        lower = self._interpolated(word, context[1:], highest=False)
        if highest and len(context) == self.order - 1:
            count, total = self._count.get((*context, word), 0), self._context_total[context]
        else:
            count = self._continuation.get((*context, word), 0)
            total = self._continuation_total[context]
        if total == 0:  # a context never seen (or seen only where nothing precedes it)
            return lower
        followers = (self._followers if highest and len(context) == self.order - 1
                     else self._continuation_followers)[context]
        alpha = max(count - self.discount, 0.0) / total
        gamma = self.discount * followers / total
        return alpha + gamma * lower

    def _unigram(self, word: int) -> float:
        if self.order == 1:  # no lower order to take continuation counts from: counts
            total = sum(self._count.values())
            return ((1 - self.unigram_discount) * self._count.get((word,), 0) / total
                    + self.unigram_discount / self.vocabulary_size)
        total = self._continuation_total[()]
        seen = self._continuation_followers[()]  # the ids with N1+(. w) > 0
        return (max(self._continuation.get((word,), 0) - self.unigram_discount, 0.0) / total
                + self.unigram_discount * seen / total / self.vocabulary_size)

    def log_probabilities(self, stream: Sequence[int]) -> np.ndarray:
        """The natural log of P(stream[i] | the ids before it) for every i >= 1 (the first id
        has no context to be predicted from): float64 `[len(stream) - 1]`."""
        ids = [int(i) for i in stream]
        width = self.order - 1
        return np.array([math.log(self.probability(ids[i], ids[max(0, i - width):i]))
                         for i in range(1, len(ids))])
