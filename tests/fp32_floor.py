"""The tolerance of a test that compares two fp32 computations of the same numbers: a multiple
of the fp32 error floor, measured against a float64 twin, as the parity battery takes it.

Two fp32 runs of one model that agree in exact arithmetic (with and without padding, a prefix
before and after a later token changes, a model before and after a `.keras` round trip) each
sit up to the model's fp32 error floor away from the exact logits, so they can differ by up to
twice it: a fixed `atol` below that fails by chance (1.19e-06 against atol=1e-6 for a 2-block
language model, issue 24). The floor is measured on the test's own inputs against the same
weights computed in float64 (`export.verification.verifier.fp32_error_floor` does this for the
battery); the tolerance is `export.verification.parity.effective_tolerance` of it:
`FLOOR_FACTOR` (3) x the floor, where twice it is the worst that rounding alone can do. A
real difference (a padded key that leaks in, a future token seen) moves the float64 logits as
much as the fp32 ones and stays far outside.

JAX computes float64 only inside `jax.enable_x64` (elsewhere it truncates to float32 with a
warning, which would measure a floor of 0), and Keras's type promotion narrows float64 results
to float32 (the torch backend's matmul follows it): the twin is built and run inside
`float64_enabled`, and its outputs are checked to be float64.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

from export.verification.parity import effective_tolerance

# The least tolerance: one fp32 ulp at 1.0, for a floor that rounds to 0.
FP32_EPS = float(np.finfo(np.float32).eps)


@contextlib.contextmanager
def float64_enabled() -> Iterator[None]:
    """float64 that is float64 on every backend.

    JAX gets x64 switched on. Keras's own type promotion (`keras.backend.result_type`) maps
    every 64-bit result to 32 bits, as JAX does without x64 (`BIT64_TO_BIT32_DTYPE` in
    keras/src/backend/common/dtypes.py, Keras 3.15), so on the torch backend `ops.matmul` of
    two float64 tensors returns float32: that one entry is lifted here, for the twin only, the
    analogue of `jax.enable_x64`. `fp32_floor` checks that the twin's outputs are float64, so a
    Keras that promotes otherwise fails loudly instead of measuring a floor of 0.
    """
    from keras.src.backend.common import dtypes as keras_dtypes

    narrowing = getattr(keras_dtypes, "BIT64_TO_BIT32_DTYPE", {})
    lifted = narrowing.pop("float64", None)
    try:
        if keras.backend.backend() != "jax":
            yield
            return
        import jax

        with jax.enable_x64(True):
            yield
    finally:
        if lifted is not None:
            narrowing["float64"] = lifted


def _as_float64(config: Any) -> Any:
    """A layer or model config with every float32 dtype policy made float64."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy":
            return {**config, "config": {**config["config"], "name": "float64"}}
        return {key: _as_float64(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_as_float64(value) for value in config]
    return config


def _call(layer: Any, x: Any) -> Any:
    return layer(x)


def float64_twin(layer: keras.layers.Layer, example: Any,
                 run: Callable[[Any, Any], Any] = _call) -> keras.layers.Layer:
    """The same layer or model (`from_config`) under float64, with the same weights.

    `run(twin, example)` builds a layer that is not yet built. Call inside `float64_enabled()`.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")  # sub-layers made in __init__ follow it too
    try:
        twin = type(layer).from_config(_as_float64(layer.get_config()))
        if not twin.built:
            run(twin, example)
    finally:
        keras.config.set_dtype_policy(previous)
    twin.set_weights([keras.ops.convert_to_numpy(weight).astype(twin_weight.dtype)
                      for weight, twin_weight in zip(layer.weights, twin.weights, strict=True)])
    return twin


def fp32_floor(layer: keras.layers.Layer, *inputs: Any,
               run: Callable[[Any, Any], Any] = _call) -> float:
    """max |run(layer, x) - run(float64 twin, x)| over `inputs`: fp32's own rounding error.

    Args:
        layer: a built fp32 layer or model.
        *inputs: what the test feeds it.
        run: `(layer, x) -> array` (default `layer(x)`), e.g. a slice of the logits or a
            call with a padding mask.
    """
    fp32 = [np.asarray(keras.ops.convert_to_numpy(run(layer, x)), np.float64) for x in inputs]
    with float64_enabled():
        twin = float64_twin(layer, inputs[0], run)
        fp64 = [np.asarray(keras.ops.convert_to_numpy(run(twin, x))) for x in inputs]
    assert all(values.dtype == np.float64 for values in fp64), [v.dtype for v in fp64]
    return max(float(np.max(np.abs(a - b))) for a, b in zip(fp32, fp64, strict=True))


def fp32_tolerance(layer: keras.layers.Layer, *inputs: Any,
                   run: Callable[[Any, Any], Any] = _call, least: float = FP32_EPS) -> float:
    """The tolerance between two fp32 runs of `layer` on `inputs` that agree in exact
    arithmetic: `effective_tolerance(least, floor)`, i.e. max(least, 3 x the fp32 floor)."""
    return effective_tolerance(least, fp32_floor(layer, *inputs, run=run))
