"""Graph rewrites measured by the benchmark but not shipped: each is timed on top of the shipped
`model.optimized.onnx`, and would move to `export.formats.fusion_rules` if it paid.

The shipped rewrites (Tensordot -> MatMul, LayerNormalization, com.microsoft.Attention) live
in `export.formats.fusion_rules` and are applied by `export.formats.optimize`; these add

    skip_layer_norm  MatMul -> +bias -> +residual -> LayerNorm  ->  com.microsoft.SkipLayerNorm...
    ffn_gemm         relu(x W1 + b1) W2 + b2 on [b, n, d]       ->  two Gemms on [b * n, d]
    dense_gemm       x W + b with a square W on [b, n, d]       ->  a Gemm on [b * n, d]

Like the shipped rules they check the constants they rely on, not every run-time shape:
`benchmarks/inference.py` runs the export's parity battery (1e-5) on every graph before
timing it, and never picks one that fails as the best path.
"""

from __future__ import annotations

import onnx_ir as ir
from onnxscript.rewriter import pattern

from export.formats.fusion_rules import MS_DOMAIN, constant


class SkipLayerNorm(pattern.RewriteRuleClassBase):
    """LayerNormalization(skip + (h @ W + bias)) -> com.microsoft.SkipLayerNormalization."""

    def pattern(self, op, h, skip, bias, gamma, beta):
        return op.LayerNormalization(op.Add(op.Add(h, bias), skip), gamma, beta,
                                     _allow_other_attributes=True, _outputs=["norm"])

    def check(self, context, h, skip, bias, norm, **_):
        result = pattern.MatchResult()
        b = constant(bias)
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
        if result and constant(w).shape[0] != constant(w).shape[1]:
            return result.fail("the kernel is not square")
        return result

    def rewrite(self, op, x, w, b, **_):
        return op.Reshape(op.Gemm(_flatten(op, x, w), w, b), op.Shape(x))


def _check_dense(x: ir.Value, weights) -> pattern.MatchResult:
    result = pattern.MatchResult()
    arrays = [constant(v) for v in weights]
    if any(a is None for a in arrays) or any(a.ndim != 2 - i % 2 for i, a in enumerate(arrays)):
        return result.fail("kernels/biases are not constant matrices/vectors")
    if x.shape is None or x.shape.rank() != 3:
        return result.fail("input is not [batch, n, d]")
    return result


def _flatten(op, x: ir.Value, kernel: ir.Value) -> ir.Value:
    return op.Reshape(x, op.Constant(value_ints=[-1, constant(kernel).shape[0]]))  # [b * n, d]


# Stages on top of `export.formats.optimize.STAGES`, applied after them in this order.
STAGES = {
    "skip_layer_norm": (SkipLayerNorm,),
    "ffn_gemm": (FeedForwardGemm,),
    "dense_gemm": (SquareDenseGemm,),
}
