"""Data-parallel training over N local devices, and JAX's multi-host start.

One command, `keras-attn train --devices N`, on either engine Keras 3 distributes with:

- JAX: `keras.distribution.DataParallel` over the first N devices: the weights are replicated,
  each batch is split along its first axis, gradients are summed by XLA.
- TensorFlow: `tf.distribute.MirroredStrategy` over N GPUs, or, on a machine without GPUs,
  over the CPU split into N logical devices (`keras_attn.training.backends.select_backend`).
  (`MultiWorkerMirroredStrategy` does not work with Keras 3, keras-team/keras#20585: several
  machines go through JAX.)

The batch size given to `fit` stays the global batch: each device sees batch / N rows.

Several machines (JAX only): start the same command on every machine with
`KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator's host:port, process 0),
`KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID` set;
`initialize_multi_host` passes them to `jax.distributed.initialize` (through
`keras.distribution.initialize`) before anything else touches a device, and `--devices`
then counts the devices of all machines together.
"""

from __future__ import annotations

import contextlib
import os

import keras

MULTI_HOST_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                        "KERAS_DISTRIBUTION_PROCESS_ID")
SUPPORTED = ("jax", "tensorflow")


def multi_host_settings(environ=None) -> dict | None:
    """The multi-host settings from the environment, or None when none is set (one machine).

    Raises:
        ValueError: some of the three variables are set and not the others, a number is not
            a non-negative integer, or the backend is not JAX.
    """
    environ = os.environ if environ is None else environ
    given = {name: environ.get(name) for name in MULTI_HOST_VARIABLES if environ.get(name)}
    if not given:
        return None
    if len(given) != len(MULTI_HOST_VARIABLES):
        missing = [name for name in MULTI_HOST_VARIABLES if name not in given]
        raise ValueError(f"Multi-host training needs all of {MULTI_HOST_VARIABLES}. "
                         f"Received: {sorted(given)}, missing {missing}")
    if keras.backend.backend() != "jax":
        raise ValueError("Multi-host training runs on the jax backend (pass --backend jax). "
                         f"Received: backend={keras.backend.backend()!r}")
    try:
        num_processes = int(given["KERAS_DISTRIBUTION_NUM_PROCESSES"])
        process_id = int(given["KERAS_DISTRIBUTION_PROCESS_ID"])
    except ValueError:
        raise ValueError("KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID "
                         f"must be integers. Received: {given}") from None
    if not 0 <= process_id < num_processes:
        raise ValueError(f"KERAS_DISTRIBUTION_PROCESS_ID must lie in [0, "
                         f"KERAS_DISTRIBUTION_NUM_PROCESSES={num_processes}). "
                         f"Received: {process_id}")
    return {"job_addresses": given["KERAS_DISTRIBUTION_JOB_ADDRESSES"],
            "num_processes": num_processes, "process_id": process_id}


def initialize_multi_host(environ=None) -> dict | None:
    """Joins this process to a multi-host JAX job when the environment describes one.

    Must run before any computation. On one machine (no variables set) it does nothing and
    returns None; else it returns the settings it initialized with.
    """
    settings = multi_host_settings(environ)
    if settings is not None:
        keras.distribution.initialize(**settings)
    return settings


def data_parallel(devices: int) -> contextlib.AbstractContextManager:
    """Sets up data parallelism over `devices` devices; returns the scope to build and compile
    the model in (the caller also runs `fit` inside it). `devices == 1` changes nothing.

    Raises:
        ValueError: `devices` is not a positive int, the backend is torch, or fewer devices
            are visible than asked for.
    """
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"devices must be a positive integer. Received: devices={devices!r}")
    if devices == 1:
        return contextlib.nullcontext()
    backend = keras.backend.backend()
    if backend == "jax":
        found = keras.distribution.list_devices()
        _check_count(devices, found, "set XLA_FLAGS=--xla_force_host_platform_device_count=N "
                                     "before jax starts to split a CPU")
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=found[:devices]))
        return contextlib.nullcontext()
    if backend == "tensorflow":
        return _mirrored_strategy(devices).scope()
    raise ValueError(f"--devices above 1 runs on the backends {SUPPORTED} (Keras distributes "
                     f"only those). Received: backend={backend!r}, devices={devices}")


def jit_compile_for(devices: int, jit_compile: bool) -> tuple[bool, str | None]:
    """Whether to compile with XLA over `devices`, and the one line that says why not when it
    was asked for but cannot be: on TensorFlow, a MirroredStrategy keeps one copy of each
    variable per device, and XLA cannot compile a step that reads variables on other devices
    ("Trying to access resource ... located in device CPU:1 from device CPU:0":
    https://www.tensorflow.org/xla/known_issues#tfvariable_on_a_different_device). JAX
    compiles every step with XLA anyway; one device changes nothing.

    Returns:
        (jit_compile to use, a note to print, or None).
    """
    if jit_compile and devices > 1 and keras.backend.backend() == "tensorflow":
        return False, (f"XLA is off for this run: TensorFlow's MirroredStrategy over "
                       f"{devices} devices keeps variables on each device, which XLA cannot "
                       f"compile a step over (tensorflow.org/xla/known_issues); --no-jit "
                       f"says the same without this note")
    return jit_compile, None


def reset() -> None:
    """Back to one device (JAX's distribution is process-global)."""
    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(None)


def _mirrored_strategy(devices: int):
    import tensorflow as tf

    found = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    _check_count(devices, found, "without GPUs, choose the backend with "
                                 "keras_attn.training.backends.select_backend(..., devices=N) "
                                 "before "
                                 "Keras starts, as `keras-attn train` does, to split the CPU")
    return tf.distribute.MirroredStrategy(devices=[device.name for device in found[:devices]])


def _check_count(devices: int, found: list, hint: str) -> None:
    if len(found) < devices:
        raise ValueError(
            f"--devices {devices} needs {devices} devices; this machine shows {len(found)}"
            f" ({', '.join(map(str, found))}){'; ' + hint if hint else ''}. "
            f"Received: devices={devices}")
