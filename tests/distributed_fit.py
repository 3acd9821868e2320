"""Fits a tiny classifier for a few steps on N devices and prints its losses as JSON:
tests/training/test_distribution.py runs it once per device count, each in a fresh process (a
process picks its backend and its devices once). Usage: python distributed_fit.py BACKEND DEVICES"""

import json
import sys

import numpy as np

from keras_attn.training.backends import select_backend


def replicas(keras, backend, model) -> int:
    """How many devices the steps ran on, as the backend's distribution says."""
    if backend == "jax":
        distribution = keras.distribution.distribution()
        return 1 if distribution is None else int(distribution.device_mesh.devices.size)
    return int(model.distribute_strategy.num_replicas_in_sync)


def main(backend: str, devices: int) -> dict:
    select_backend(backend, devices)
    import keras

    import keras_attn as ka
    from keras_attn.training.distribution import data_parallel

    keras.utils.set_random_seed(0)
    config = ka.ModelConfig(vocab_size=30, max_len=8, d_model=8, num_heads=2, ff_dim=16,
                            num_layers=1, num_classes=2)  # no dropout: same math per device
    rng = np.random.default_rng(0)
    x, y = rng.integers(1, 30, size=(32, 8)), rng.integers(0, 2, size=32)
    with data_parallel(devices):
        model = ka.build_classifier(config)
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # 3 epochs of 4 steps, global batch 8 whatever the device count.
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    return {"loss": history.history["loss"], "replicas": replicas(keras, backend, model)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
