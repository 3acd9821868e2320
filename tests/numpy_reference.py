"""Independent NumPy references for the walkthrough's formulas.

Written from the walkthrough's text, not from the layer code: the tests compare the layers
against these. Nothing here imports keras_attn.
"""

import numpy as np


def softmax(scores):
    shifted = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def positional_embedding(token_ids, token_table, position_table):
    """Steps 2-3: x_i = token_table[id_i] + position_table[i]."""
    n = token_ids.shape[1]
    return token_table[token_ids] + position_table[:n][None]


def key_mask(batch, n, padding_mask=None, causal=False):
    """allowed[b, i, j]: may query i look at key j?"""
    allowed = np.ones((batch, n, n), dtype=bool)
    if padding_mask is not None:
        allowed &= padding_mask.astype(bool)[:, None, :]
    if causal:
        allowed &= np.tril(np.ones((n, n), dtype=bool))[None]
    return allowed


def attention(X, Wq, Wk, Wv, padding_mask=None, causal=False):
    """Step 4, one sequence at a time: softmax((X Wq)(X Wk)^T / sqrt(d)) (X Wv)."""
    batch, n, d = X.shape
    allowed = key_mask(batch, n, padding_mask, causal)
    outputs, all_weights = [], []
    for b in range(batch):
        Q, K, V = X[b] @ Wq, X[b] @ Wk, X[b] @ Wv  # 4.1-4.2
        scores = Q @ K.T  # 4.3
        scores = scores / np.sqrt(Q.shape[-1])  # 4.4
        scores = np.where(allowed[b], scores, -np.inf)
        weights = softmax(scores)  # 4.5
        outputs.append(weights @ V)  # 4.6
        all_weights.append(weights)
    return np.stack(outputs), np.stack(all_weights)


def multi_head_attention(X, W_qkv, b_qkv, W_out, b_out, num_heads, padding_mask=None,
                         causal=False):
    """Heads attend over slices of one projection; outputs concatenated, then projected."""
    d = X.shape[-1]
    head = d // num_heads
    qkv = X @ W_qkv + b_qkv
    Q, K, V = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
    heads, weights = [], []
    batch, n, _ = X.shape
    allowed = key_mask(batch, n, padding_mask, causal)
    for h in range(num_heads):
        part = slice(h * head, (h + 1) * head)
        q, k, v = Q[..., part], K[..., part], V[..., part]
        scores = np.einsum("bik,bjk->bij", q, k) / np.sqrt(head)
        w = softmax(np.where(allowed, scores, -np.inf))
        heads.append(w @ v)
        weights.append(w)
    return np.concatenate(heads, axis=-1) @ W_out + b_out, np.stack(weights, axis=1)


def gelu(x):
    from math import erf

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0.0), "gelu": gelu, "gelu_tanh": gelu_tanh}


def feed_forward(X, W1, b1, W2, b2, activation="relu"):
    """Step 5: Dense -> non-linearity -> Dense."""
    return ACTIVATIONS[activation](X @ W1 + b1) @ W2 + b2


def layer_norm(X, gamma, beta, eps=1e-5):
    mean = X.mean(axis=-1, keepdims=True)
    var = X.var(axis=-1, keepdims=True)
    return (X - mean) / np.sqrt(var + eps) * gamma + beta
