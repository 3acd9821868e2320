"""One harness that checks every keras_attn layer the same way (after KerasHub's
`run_layer_test`): config round trip, eager and symbolic calls, `.keras` save/load with
`safe_mode=True`, and `fit` under `jit_compile=True` (eagerly on torch)."""

import keras
import numpy as np


def _wrap(layer, example, call_kwargs):
    """A functional model around `layer`; `padding_mask` comes from a second input."""
    dtype = "int32" if np.issubdtype(example.dtype, np.integer) else "float32"
    x = keras.Input(shape=example.shape[1:], dtype=dtype, name="x")
    inputs = [x]
    kwargs = dict(call_kwargs)
    if "padding_mask" in kwargs:
        mask = keras.Input(shape=example.shape[1:2], dtype="bool", name="padding_mask")
        inputs.append(mask)
        kwargs["padding_mask"] = mask
    return keras.Model(inputs, layer(x, **kwargs))


def _feed(example, call_kwargs):
    if "padding_mask" in call_kwargs:
        return [example, np.asarray(call_kwargs["padding_mask"])]
    return [example]


def run_layer_test(layer_cls, init_kwargs, example, call_kwargs=None, expected_shape=None,
                   expected_num_weights=None, tmp_path=None):
    """Checks one layer class end to end; raises AssertionError on the first failure."""
    call_kwargs = call_kwargs or {}
    layer = layer_cls(**init_kwargs)

    # Config round trip: a layer rebuilt from its config has the same config.
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert config[key] == value, (key, config[key], value)
    assert layer_cls.from_config(config).get_config() == config

    # Eager call.
    eager = layer(example, **call_kwargs)
    assert tuple(eager.shape) == tuple(expected_shape or example.shape[:2] + eager.shape[2:])
    if expected_num_weights is not None:
        assert len(layer.weights) == expected_num_weights, [w.path for w in layer.weights]

    # Symbolic call inside a functional model gives the same numbers.
    model = _wrap(layer_cls.from_config(config), example, call_kwargs)
    feed = _feed(example, call_kwargs)
    model.set_weights(_weights_for(model, layer))
    np.testing.assert_allclose(model.predict(feed, verbose=0), eager, atol=1e-5)

    # .keras save and load with safe_mode=True: identical outputs.
    path = tmp_path / f"{layer_cls.__name__}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(feed, verbose=0), model.predict(feed, verbose=0))

    # fit under XLA moves the weights.
    before = [w.copy() for w in model.get_weights()]
    # torch's jit_compile is torch.compile: 75-150 s per layer on a CPU (measured), so torch
    # fits eagerly here; XLA on TensorFlow and JAX.
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse",
                  jit_compile=keras.backend.backend() != "torch")
    target = np.ones_like(np.asarray(eager))
    history = model.fit(feed, target, epochs=2, batch_size=len(example), verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def _weights_for(model, layer):
    """The eager layer's weights, in the wrapped copy's order (same build, same order)."""
    weights = layer.get_weights()
    assert len(weights) == len(model.get_weights())
    return weights
