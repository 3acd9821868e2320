"""Choosing the Keras backend (tensorflow, jax, torch) before Keras is imported.

Keras reads `KERAS_BACKEND` once, at `import keras`: a process has one backend. The CLI calls
`select_backend` before any module that imports Keras. No keras import here.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"
DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tf-nightly"), "jax": ("jax",),
                 "torch": ("torch",)}
INSTALL_HINT = {"tensorflow": "pip install tensorflow", "jax": "pip install 'keras-attn[jax]'",
                "torch": "pip install 'keras-attn[torch]'"}


def default_backend() -> str:
    """The environment's `KERAS_BACKEND`, else "tensorflow"."""
    return os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND


def check_backend(name: str) -> str:
    """Raises ValueError unless `name` is a known Keras backend that is installed here."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}. Received: backend={name!r}")
    if not _installed(name):
        raise ValueError(f"The {name} backend is not installed; install it with "
                         f"`{INSTALL_HINT[name]}`. Received: backend={name!r}")
    return name


def _installed(name: str) -> bool:
    """Whether the backend's package is installed, read from package metadata: asking the
    import system (`find_spec`) would trip keras_attn.cli.quiet's one-shot TensorFlow import
    hook."""
    if name in sys.modules:
        return True
    for distribution in DISTRIBUTIONS[name]:
        try:
            importlib.metadata.distribution(distribution)
            return True
        except importlib.metadata.PackageNotFoundError:
            continue
    return False


def select_backend(name: str | None, devices: int = 1) -> str:
    """Makes `name` (default: `default_backend()`) the backend of this process; returns it.

    With `devices` > 1 on a machine without accelerators, the host CPU is split into that many
    devices so that data parallelism can run there: XLA host devices on JAX
    (`--xla_force_host_platform_device_count`; on GPUs and TPUs JAX uses those instead), and
    logical CPU devices on TensorFlow when it sees no GPU. Both must happen before the backend
    starts, which is why they happen here.

    Raises:
        ValueError: an unknown or uninstalled backend, or Keras already imported in this
            process with another backend (set `KERAS_BACKEND` before starting instead).
    """
    name = check_backend(name or default_backend())
    if "keras" in sys.modules:
        import keras

        current = keras.backend.backend()
        if current != name:
            raise ValueError(
                f"Keras was already imported in this process with the {current} backend, and a "
                f"process cannot switch backends. Set KERAS_BACKEND={name} before starting. "
                f"Received: backend={name!r}"
            )
    os.environ["KERAS_BACKEND"] = name
    if name == "jax" and devices > 1 and "jax" not in sys.modules:
        flag = f"--xla_force_host_platform_device_count={devices}"
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()
    if name == "tensorflow" and devices > 1 and "keras" not in sys.modules:
        _split_tensorflow_cpu(devices)
    return name


def _split_tensorflow_cpu(devices: int) -> None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)])
