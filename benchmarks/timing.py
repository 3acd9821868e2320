"""Timing on a shared machine: interleaved rounds, best round kept; the roofline arithmetic.

Other processes share the two cores, so a single timing can be off by 2x. Every contender is
timed in the same rounds, one after the other, and each keeps its best round: interference
only ever slows a round down, so the best round is the closest to what the code can do, and
interleaving exposes every contender to the same machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np

from keras_attn import ModelConfig


def interleaved_best(contenders: Mapping[str, Callable[[], object]], rounds: int,
                     calls: int, warmup: int = 2) -> dict[str, float]:
    """Seconds per call of each contender: the best of `rounds` rounds of `calls` calls.

    Each contender is called `warmup` times first (first calls allocate and compile), and
    once, untimed, at the start of each of its rounds: the previous contender's thread pool
    may still be spinning on the cores, and its data may have left the caches.
    """
    for function in contenders.values():
        for _ in range(warmup):
            function()
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, function in contenders.items():
            function()
            start = time.perf_counter()
            for _ in range(calls):
                function()
            best[name] = min(best[name], (time.perf_counter() - start) / calls)
    return best


def matmul_peak(size: int = 2048, rounds: int = 5) -> float:
    """FLOP/s of NumPy's float32 `size`^3 matmul (BLAS, all cores): the machine's roof."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    seconds = interleaved_best({"matmul": lambda: a @ b}, rounds=rounds, calls=1)["matmul"]
    return 2.0 * size**3 / seconds


def forward_flops_per_token(config: ModelConfig, length: int | None = None) -> float:
    """Multiply-adds x 2 of one token's forward pass through the classifier.

    Per block: the fused QKV projection 2*d*3d, scores 2*n*d (one dot product of width d with
    each of the n keys, summed over heads), the weighted sum of values 2*n*d, the output
    projection 2*d*d, and the feed-forward network 2*2*d*ff. The head runs once per sequence:
    2*d*classes / n. Embedding lookups, norms, softmax and adds are left out (no matmul).
    """
    n = length or config.max_len
    d, ff = config.d_model, config.ff_dim
    block = 2 * d * 3 * d + 2 * n * d + 2 * n * d + 2 * d * d + 2 * 2 * d * ff
    return float(config.num_layers * block + 2 * d * config.num_classes / n)


def tokens_per_second(seconds_per_batch: float, batch: int, length: int) -> float:
    return batch * length / seconds_per_batch
