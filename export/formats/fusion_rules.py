"""Rewrite rules: the small ops tf2onnx writes for keras_attn's layers -> onnxruntime's fused ops.

tf2onnx writes every layer out of small ops, and onnxruntime's own fusions (written for
PyTorch exports) match none of them: LayerNorm arrives as GlobalAveragePool/Sub/Mul/Sqrt/...
and stays so, and attention stays Split/Reshape/Transpose/MatMul/Softmax. These onnxscript
rules match the shapes tf2onnx gives keras_attn's layers and replace them:

    TensordotToMatMul  Reshape -> MatMul -> Reshape (Tensordot)      ->  MatMul on the 3-D input
    MomentsLayerNorm   GlobalAveragePool moments -> ... -> Add       ->  LayerNormalization
    SplitQKVAttention  QKV MatMul+bias -> Split -> heads -> softmax  ->  com.microsoft.Attention

The rules check the constants they rely on (flatten shapes, split and heads, permutations,
the 1/sqrt(head_dim) scale, the mask's structure and fill value), but not every shape computed
at run time: the caller must check the rewritten graph's parity against Keras, as
`export.formats.optimize` does before a rewritten file ships.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import _ir_utils, pattern

MS_DOMAIN = "com.microsoft"


def constant(value: ir.Value | None) -> np.ndarray | None:
    """The value as a NumPy array when it is a constant (initializer or Constant), else None."""
    return _ir_utils.get_numpy_value(value)


def constant_equals(value: ir.Value | None, expected) -> bool:
    array = constant(value)
    return array is not None and array.size == np.size(expected) and np.allclose(
        array.reshape(-1), np.reshape(expected, -1), rtol=1e-6)


class TensordotToMatMul(pattern.RewriteRuleClassBase):
    """`Reshape(x, [-1, k]) @ W` reshaped back to `[b, n, m]` is `x @ W` on the 3-D x."""

    def pattern(self, op, x, flat_shape, weight, out_shape):
        return op.Reshape(op.MatMul(op.Reshape(x, flat_shape), weight), out_shape)

    def check(self, context, x, flat_shape, weight, **_):
        result = pattern.MatchResult()
        w = constant(weight)
        if w is None or w.ndim != 2:
            return result.fail("weight is not a constant matrix")
        if not constant_equals(flat_shape, [-1, w.shape[0]]):
            return result.fail("not a flatten to [-1, k]")
        if x.shape is not None and x.shape.rank() != 3:
            return result.fail("input is not [batch, n, k]")
        return result

    def rewrite(self, op, x, weight, **_):
        return op.MatMul(x, weight)


class MomentsLayerNorm(pattern.RewriteRuleClassBase):
    """tf2onnx's LayerNorm: mean and variance by GlobalAveragePool over the last axis, then
    x * g + (beta - mean * g) with g = gamma / sqrt(var + eps)."""

    def pattern(self, op, x, epsilon, gamma, beta):
        mean = op.GlobalAveragePool(x)
        deviation = op.Sub(x, mean)
        variance = op.GlobalAveragePool(op.Mul(deviation, deviation))
        scale = op.Mul(op.Reciprocal(op.Sqrt(op.Add(variance, epsilon))), gamma)
        return op.Add(op.Mul(x, scale), op.Add(op.Mul(op.Neg(mean), scale), beta))

    def check(self, context, x, epsilon, gamma, beta, **_):
        result = pattern.MatchResult()
        if _ir_utils.get_singleton_value(epsilon) is None:
            return result.fail("epsilon is not a constant scalar")
        g, b = constant(gamma), constant(beta)
        if g is None or b is None or g.size != g.shape[-1] or b.shape != g.shape:
            return result.fail("gamma/beta are not constant [1, 1, d] vectors")
        if x.shape is None or x.shape.rank() != 3:  # GlobalAveragePool: the last axis only
            return result.fail("input is not [batch, n, d]")
        return result

    def rewrite(self, op, x, epsilon, gamma, beta, **_):
        # tf2onnx stores gamma and beta as [1, 1, d]; LayerNormalization wants [d].
        gamma, beta = (_as_vector(op, v) for v in (gamma, beta))
        return op.LayerNormalization(x, gamma, beta, axis=-1,
                                     epsilon=float(_ir_utils.get_singleton_value(epsilon)))


def _as_vector(op, value: ir.Value) -> ir.Value:
    """A 1-D initializer holding `value`'s constant. tf2onnx shares equal constants (two
    LayerNorms with gamma all ones read one tensor), so an existing copy is reused."""
    name = f"{value.name}_1d"
    existing = value.graph.initializers.get(name) if value.graph is not None else None
    if existing is not None:
        return existing
    return op.initializer(ir.tensor(constant(value).reshape(-1), name=name))


class SplitQKVAttention(pattern.RewriteRuleClassBase):
    """keras_attn's MultiHeadSelfAttention -> com.microsoft.Attention, which does the fused
    QKV projection, the heads, the scaled scores, the mask and the softmax in one kernel.

    The layer projects to `[b, n, 3d]`, splits Q, K, V, lays each out as `[b, heads, n,
    head_dim]` (K transposed for the scores), and masks the scores as `where(mask, scores,
    fill)`, which tf2onnx writes as `mask * scores + fill * !mask`. Two masks are known:
    the classifier's key padding mask `[b, 1, 1, n]`, and the language model's padding mask
    AND a causal `i >= j` built from one `Range`, which becomes Attention's `unidirectional`.
    """

    def pattern(self, op, x, qkv_kernel, qkv_bias, heads_shape, scale, keep_float, fill_term,
                out_shape):
        qkv = op.Add(op.MatMul(x, qkv_kernel), qkv_bias)  # [b, n, 3 * d]
        query, key, value = op.Split(qkv, _allow_other_inputs=True,
                                     _outputs=["query", "key", "value"])  # each [b, n, d]
        query = op.Transpose(op.Reshape(query, heads_shape), perm=[0, 2, 1, 3])
        key = op.Transpose(op.Reshape(key, heads_shape), perm=[0, 2, 3, 1])  # K^T per head
        value = op.Transpose(op.Reshape(value, heads_shape), perm=[0, 2, 1, 3])
        scores = op.Mul(op.MatMul(query, key), scale)  # [b, heads, n, n]
        # The mask's own nodes are shared by every block, so `check` follows them instead.
        masked = op.Add(op.Mul(keep_float, scores), fill_term)
        y = op.MatMul(op.Softmax(masked, _outputs=["weights"]), value)  # [b, heads, n, hd]
        return op.Reshape(op.Transpose(y, perm=[0, 2, 1, 3]), out_shape)

    def check(self, context, x, qkv_kernel, qkv_bias, heads_shape, scale, keep_float,
              fill_term, query, weights, **_):
        result = pattern.MatchResult()
        w, b = constant(qkv_kernel), constant(qkv_bias)
        if w is None or w.ndim != 2 or w.shape[1] != 3 * w.shape[0]:
            return result.fail("qkv kernel is not a constant [d, 3d] matrix")
        if b is None or b.shape != (w.shape[1],):
            return result.fail("qkv bias is not a constant [3d] vector")
        if not _splits_in_thirds(query.producer(), w.shape[0]):
            return result.fail("the split is not q, k, v in equal thirds of the last axis")
        softmax_axis = weights.producer().attributes.get_int("axis", -1)
        if softmax_axis not in (-1, 3):
            return result.fail("the softmax is not over the keys")
        heads = _heads_of(heads_shape)
        if heads is None or heads[0] * heads[1] != w.shape[0]:
            return result.fail("[heads, head_dim] not found in the reshape")
        if not constant_equals(scale, 1.0 / math.sqrt(heads[1])):
            return result.fail("scale is not 1/sqrt(head_dim)")
        keep, fill = _select_mask(keep_float, fill_term)
        if keep is None or fill > -1e4:
            return result.fail("the scores are not masked by a select with a large negative fill")
        padding, causal = _key_padding(keep)
        if padding is None:
            return result.fail("the mask is neither a key padding mask nor padding AND causal")
        self._num_heads, self._padding, self._causal, self._fill = heads[0], padding, causal, fill
        return result

    def rewrite(self, op, x, qkv_kernel, qkv_bias, **_):
        # Raw key mask [b, n] (1 = real token); ORT adds fill to the scores of masked keys,
        # and with `unidirectional` also to those of later positions.
        mask_index = op.Cast(self._padding, to=ir.DataType.INT32)
        return op.Attention(x, qkv_kernel, qkv_bias, mask_index, num_heads=self._num_heads,
                            unidirectional=int(self._causal), mask_filter_value=self._fill,
                            _domain=MS_DOMAIN)


def _producer(value: ir.Value | None, op_type: str) -> ir.Node | None:
    node = None if value is None else value.producer()
    return node if node is not None and node.op_type == op_type else None


def _splits_in_thirds(split: ir.Node, d_model: int) -> bool:
    """Whether the Split cuts the last axis of `[b, n, 3d]` into three `d` (no sizes given
    means equal parts)."""
    if split.attributes.get_int("axis", 0) not in (-1, 2):
        return False
    sizes = split.inputs[1] if len(split.inputs) > 1 else None
    return sizes is None or constant_equals(sizes, [d_model] * 3)


def _heads_of(shape: ir.Value) -> tuple[int, int] | None:
    """(heads, head_dim) from tf2onnx's `Cast(Concat(batch, n, heads, head_dim))` reshape
    target."""
    node = shape.producer()
    while node is not None and node.op_type == "Cast":
        node = node.inputs[0].producer()
    if node is None or node.op_type != "Concat" or len(node.inputs) < 3:
        return None
    heads, head_dim = constant(node.inputs[-2]), constant(node.inputs[-1])
    if heads is None or head_dim is None or heads.size != 1 or head_dim.size != 1:
        return None
    return int(heads.reshape(-1)[0]), int(head_dim.reshape(-1)[0])


def _select_mask(keep_float: ir.Value, fill_term: ir.Value) -> tuple[ir.Value | None, float]:
    """(keep, fill) when keep_float = Cast(keep) and fill_term = fill * Cast(Not(keep)),
    with `fill` a constant scalar on either side of the Mul; (None, 0.0) otherwise."""
    cast, mul = _producer(keep_float, "Cast"), _producer(fill_term, "Mul")
    if cast is None or mul is None:
        return None, 0.0
    keep = cast.inputs[0]
    first, second = mul.inputs
    for fill, negated in ((first, second), (second, first)):
        negated_cast = _producer(negated, "Cast")
        not_node = None if negated_cast is None else _producer(negated_cast.inputs[0], "Not")
        value = _ir_utils.get_singleton_value(fill)
        if not_node is not None and not_node.inputs[0] is keep and value is not None:
            return keep, float(value)
    return None, 0.0


def _key_padding(keep: ir.Value) -> tuple[ir.Value | None, bool]:
    """(padding [b, n] bool, causal) when `keep` is the padding mask laid out for the heads
    (`[b, 1, 1, n]`), or that AND a causal mask (`[b, 1, n, n]`); (None, False) otherwise."""
    outer = _unsqueezed(keep, 1)  # the heads axis
    if outer is None:
        return None, False
    padding = _unsqueezed(outer, 1)  # the queries axis: a key mask only
    if padding is not None:
        return (padding, False) if _is_matrix(padding) else (None, False)
    both = _producer(outer, "And")
    if both is None:
        return None, False
    for first, second in (both.inputs, reversed(both.inputs)):
        padding = _unsqueezed(first, 1)
        if padding is not None and _is_matrix(padding) and _is_causal(second):
            return padding, True
    return None, False


def _is_matrix(value: ir.Value) -> bool:
    return value.shape is not None and value.shape.rank() == 2


def _unsqueezed(value: ir.Value, axis: int) -> ir.Value | None:
    """x when `value` is Unsqueeze(x, [axis]), else None."""
    node = _producer(value, "Unsqueeze")
    if node is None or len(node.inputs) < 2 or not constant_equals(node.inputs[1], [axis]):
        return None
    return node.inputs[0]


def _is_causal(mask: ir.Value) -> bool:
    """Whether `mask` is `positions[:, None] >= positions[None, :]` with positions = Range(0,
    n, 1): query i may attend to key j only when j <= i."""
    node = _producer(mask, "GreaterOrEqual")
    if node is None:
        return False
    rows, columns = (_skip_full_slices(v) for v in node.inputs)
    rows, columns = _unsqueezed(rows, 1), _unsqueezed(columns, 0)
    if rows is None or rows is not columns:
        return False
    positions = _producer(rows, "Range")  # start, limit, delta
    return (positions is not None and constant_equals(positions.inputs[0], [0])
            and constant_equals(positions.inputs[2], [1]))


def _skip_full_slices(value: ir.Value) -> ir.Value:
    """Follows Slice nodes that keep everything (start 0, step 1, end >= 1e9: tf2onnx's "to the
    end")."""
    node = _producer(value, "Slice")
    while node is not None and len(node.inputs) >= 3:
        starts, ends = constant(node.inputs[1]), constant(node.inputs[2])
        steps = constant(node.inputs[4]) if len(node.inputs) > 4 else None
        if starts is None or ends is None or starts.any() or (ends < 10**9).any() or (
                steps is not None and (steps != 1).any()):
            break
        value = node.inputs[0]
        node = _producer(value, "Slice")
    return value
