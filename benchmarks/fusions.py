"""Rewrites a tf2onnx export of a keras_attn model into ops onnxruntime runs as single kernels.

tf2onnx writes every layer out of small ops, and onnxruntime's own fusions (written for
PyTorch exports) match none of them: LayerNorm arrives as GlobalAveragePool/Sub/Mul/Sqrt/...
and stays so, and attention stays Reshape/Transpose/Slice/MatMul/Softmax. These onnxscript
rewrite rules match the shapes tf2onnx gives keras_attn's layers and replace them:

    tensordot        Reshape -> MatMul -> Reshape (Tensordot)  ->  MatMul on the 3-D input
    layer_norm       GlobalAveragePool moments -> ... -> Add   ->  LayerNormalization
    attention        QKV MatMul+bias -> heads -> softmax -> concat  ->  com.microsoft.Attention
    skip_layer_norm  MatMul -> +bias -> +residual -> LayerNorm  ->  com.microsoft.SkipLayerNorm...
    ffn_gemm         relu(x W1 + b1) W2 + b2 on [b, n, d]       ->  two Gemms on [b * n, d]
    dense_gemm       x W + b with a square W on [b, n, d]       ->  a Gemm on [b * n, d]

The rules check the constants they rely on (flatten shapes, slice bounds, permutations, the
1/sqrt(head_dim) scale, the fill value), but not every shape computed at run time (the
Tensordot's output shape, for one): the caller must check the rewritten graph's parity
against Keras. `benchmarks/inference.py` runs the export's parity battery (1e-5) on every
rewritten graph before timing it, and never picks one that fails as the best path.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnx_ir as ir
import onnxscript.optimizer
from onnxscript.rewriter import _ir_utils, pattern

MS_DOMAIN = "com.microsoft"


def _const(value: ir.Value | None) -> np.ndarray | None:
    return _ir_utils.get_numpy_value(value)


def _const_equals(value: ir.Value | None, expected) -> bool:
    array = _const(value)
    return array is not None and array.size == np.size(expected) and np.allclose(
        array.reshape(-1), np.reshape(expected, -1), rtol=1e-6)


class TensordotToMatMul(pattern.RewriteRuleClassBase):
    """`Reshape(x, [-1, k]) @ W` reshaped back to `[b, n, m]` is `x @ W` on the 3-D x."""

    def pattern(self, op, x, flat_shape, weight, out_shape):
        return op.Reshape(op.MatMul(op.Reshape(x, flat_shape), weight), out_shape)

    def check(self, context, x, flat_shape, weight, **_):
        result = pattern.MatchResult()
        w = _const(weight)
        if w is None or w.ndim != 2:
            return result.fail("weight is not a constant matrix")
        if not _const_equals(flat_shape, [-1, w.shape[0]]):
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
        g, b = _const(gamma), _const(beta)
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
    return op.initializer(ir.tensor(_const(value).reshape(-1), name=name))


class FusedQKVAttention(pattern.RewriteRuleClassBase):
    """keras_attn's MultiHeadSelfAttention (fused QKV projection, padding mask as a select)
    -> com.microsoft.Attention, which does the projection, the heads and the softmax."""

    def pattern(self, op, x, qkv_kernel, qkv_bias, heads_shape, s0, e0, s1, e1, s2, e2, axes,
                squeeze_axes, scale, keep_float, fill_term, out_shape):
        qkv = op.Add(op.MatMul(x, qkv_kernel), qkv_bias)  # [b, n, 3 * d]
        # [3, b, heads, n, head_dim]
        heads = op.Transpose(op.Reshape(qkv, heads_shape), perm=[2, 0, 3, 1, 4])
        query = op.Squeeze(op.Slice(heads, s0, e0, axes), squeeze_axes)
        key = op.Squeeze(op.Slice(heads, s1, e1, axes), squeeze_axes)
        value = op.Squeeze(op.Slice(heads, s2, e2, axes), squeeze_axes)
        scores = op.Mul(op.MatMul(query, op.Transpose(key, perm=[0, 1, 3, 2])), scale)
        # where(mask, scores, fill) as tf2onnx writes SelectV2: mask * scores + fill * !mask.
        # The mask's own nodes are shared by every block, so `check` follows them instead.
        masked = op.Add(op.Mul(keep_float, scores), fill_term)
        y = op.MatMul(op.Softmax(masked), value)  # [b, heads, n, head_dim]
        return op.Reshape(op.Transpose(y, perm=[0, 2, 1, 3]), out_shape)

    def check(self, context, x, qkv_kernel, qkv_bias, heads_shape, s0, e0, s1, e1, s2, e2,
              axes, squeeze_axes, scale, keep_float, fill_term, **_):
        result = pattern.MatchResult()
        w = _const(qkv_kernel)
        if w is None or w.ndim != 2 or w.shape[1] != 3 * w.shape[0]:
            return result.fail("qkv kernel is not a constant [d, 3d] matrix")
        if _const(qkv_bias) is None:
            return result.fail("qkv bias is not constant")
        bounds = (s0, e0, s1, e1, s2, e2)
        if not all(_const_equals(v, [b]) for v, b in zip(bounds, (0, 1, 1, 2, 2, 3),
                                                             strict=True)):
            return result.fail("the slices are not q = [0], k = [1], v = [2]")
        if not (_const_equals(axes, [0]) and _const_equals(squeeze_axes, [0])):
            return result.fail("slices/squeezes not on the qkv axis")
        num_heads = _heads_of(heads_shape)
        if num_heads is None or w.shape[0] % num_heads:
            return result.fail("number of heads not found in the reshape")
        if not _const_equals(scale, 1.0 / math.sqrt(w.shape[0] // num_heads)):
            return result.fail("scale is not 1/sqrt(head_dim)")
        keep, fill = _select_mask(keep_float, fill_term)
        # A key padding mask only ([b, 1, 1, n]); a causal one ([.., n, n]) is not a raw
        # key mask and stays as it is.
        if keep is None or keep.shape is None or keep.shape.rank() != 4 or tuple(
                keep.shape)[1:3] != (1, 1):
            return result.fail("the scores are not masked by a [b, 1, 1, n] key mask")
        if fill > -1e4:
            return result.fail("the fill value is not a large negative number")
        self._num_heads, self._keep, self._fill = num_heads, keep, fill
        return result

    def rewrite(self, op, x, qkv_kernel, qkv_bias, **_):
        # Raw key mask [b, n] (1 = real token); ORT adds (1 - mask) * fill to the scores.
        mask_index = op.Cast(op.Squeeze(self._keep, op.Constant(value_ints=[1, 2])),
                             to=ir.DataType.INT32)
        return op.Attention(x, qkv_kernel, qkv_bias, mask_index, num_heads=self._num_heads,
                            mask_filter_value=self._fill, _domain=MS_DOMAIN)


def _producer(value: ir.Value | None, op_type: str) -> ir.Node | None:
    node = None if value is None else value.producer()
    return node if node is not None and node.op_type == op_type else None


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


def _heads_of(shape: ir.Value) -> int | None:
    """num_heads from tf2onnx's `Cast(Concat(batch, n, 3, heads, head_dim))` reshape target."""
    node = shape.producer()
    while node is not None and node.op_type == "Cast":
        node = node.inputs[0].producer()
    if node is None or node.op_type != "Concat" or len(node.inputs) < 3:
        return None
    heads = _const(node.inputs[-2])
    return int(heads.reshape(-1)[0]) if heads is not None and heads.size == 1 else None


class SkipLayerNorm(pattern.RewriteRuleClassBase):
    """LayerNormalization(skip + (h @ W + bias)) -> com.microsoft.SkipLayerNormalization."""

    def pattern(self, op, h, skip, bias, gamma, beta):
        return op.LayerNormalization(op.Add(op.Add(h, bias), skip), gamma, beta,
                                     _allow_other_attributes=True, _outputs=["norm"])

    def check(self, context, h, skip, bias, norm, **_):
        result = pattern.MatchResult()
        b = _const(bias)
        if b is None or b.ndim != 1:
            return result.fail("bias is not a constant vector")
        if norm.producer().attributes.get_int("axis", -1) != -1:
            return result.fail("not over the last axis")
        return result

    def rewrite(self, op, h, skip, bias, gamma, beta, norm, **_):
        epsilon = norm.producer().attributes.get_float("epsilon", 1e-5)
        return op.SkipLayerNormalization(h, skip, gamma, beta, bias, epsilon=epsilon,
                                         _domain=MS_DOMAIN)


class FeedForwardGemm(pattern.RewriteRuleClassBase):
    """relu(x @ W1 + b1) @ W2 + b2 on `[b, n, d]` -> two Gemms on `[b * n, d]`.

    onnxruntime fuses Gemm with the Relu (FusedGemm), and a Gemm adds its bias in the
    matmul itself: two passes fewer over the `[b * n, ff]` hidden units and one over the output.
    """

    def pattern(self, op, x, w1, b1, w2, b2):
        return op.Add(op.MatMul(op.Relu(op.Add(op.MatMul(x, w1), b1)), w2), b2)

    def check(self, context, x, w1, b1, w2, b2, **_):
        return _check_dense(x, (w1, b1, w2, b2))

    def rewrite(self, op, x, w1, b1, w2, b2, **_):
        hidden = op.Relu(op.Gemm(_flatten(op, x, w1), w1, b1))  # [b * n, ff]
        return op.Reshape(op.Gemm(hidden, w2, b2), op.Shape(x))  # back to [b, n, d]


class SquareDenseGemm(pattern.RewriteRuleClassBase):
    """x @ W + b with W `[d, d]` on `[b, n, d]` (the attention's output projection) -> a Gemm
    on `[b * n, d]`, which adds the bias inside the matmul."""

    def pattern(self, op, x, w, b):
        return op.Add(op.MatMul(x, w), b)

    def check(self, context, x, w, b, **_):
        result = _check_dense(x, (w, b))
        if result and _const(w).shape[0] != _const(w).shape[1]:
            return result.fail("the kernel is not square")
        return result

    def rewrite(self, op, x, w, b, **_):
        return op.Reshape(op.Gemm(_flatten(op, x, w), w, b), op.Shape(x))


def _check_dense(x: ir.Value, weights) -> pattern.MatchResult:
    result = pattern.MatchResult()
    arrays = [_const(v) for v in weights]
    if any(a is None for a in arrays) or any(a.ndim != 2 - i % 2 for i, a in enumerate(arrays)):
        return result.fail("kernels/biases are not constant matrices/vectors")
    if x.shape is None or x.shape.rank() != 3:
        return result.fail("input is not [batch, n, d]")
    return result


def _flatten(op, x: ir.Value, kernel: ir.Value) -> ir.Value:
    return op.Reshape(x, op.Constant(value_ints=[-1, _const(kernel).shape[0]]))  # [b * n, d]


# Applied in this order: each step matches the graph the previous one left.
STAGES = {
    "tensordot": [TensordotToMatMul.rule()],
    "layer_norm": [MomentsLayerNorm.rule()],
    "attention": [FusedQKVAttention.rule()],
    "skip_layer_norm": [SkipLayerNorm.rule()],
    "ffn_gemm": [FeedForwardGemm.rule()],
    "dense_gemm": [SquareDenseGemm.rule()],
}


def fuse(proto: onnx.ModelProto, stages=tuple(STAGES)) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Applies the named stages of rewrites; returns the new model and the count per stage."""
    # The rules check ranks, so every intermediate value needs its shape.
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))
    model.opset_imports.setdefault(MS_DOMAIN, 1)
    counts = {}
    for stage in stages:
        counts[stage] = pattern.RewriteRuleSet(STAGES[stage], commute=True).apply_to_model(model)
        onnxscript.optimizer.remove_unused_nodes(model)  # the shape arithmetic left behind
    fused = ir.serde.serialize_model(model)
    onnx.checker.check_model(fused)
    return fused, counts
