"""Data parallelism (keras_attn/training/distribution.py), backend choice
(keras_attn/training/backends.py) and
`keras-attn train --backend jax --devices 2 --export`, on 2 host CPU devices.

Each run is a fresh process: a process picks its backend and its devices once.
"""

import csv
import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from repo_paths import TESTS

from keras_attn.data.reference_task import make_reference_task
from keras_attn.training import backends, distribution

ROOT = TESTS.parent
# Same initial weights, same global batches: only the order of float additions differs
# (per-device partial sums). Measured: 1.2e-7 on both backends.
LOSS_RTOL = 1e-5


def _env(backend):
    return {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}


def _fit(backend, devices):
    result = subprocess.run([sys.executable, str(TESTS / "distributed_fit.py"), backend,
                             str(devices)], env=_env(backend), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _needs(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"the {backend} backend is not installed: pip install 'keras-attn[{backend}]'")


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_two_devices_give_the_losses_of_one_on_the_same_global_batch(backend):
    _needs(backend)
    one, two = _fit(backend, 1), _fit(backend, 2)
    assert (one["replicas"], two["replicas"]) == (1, 2)
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=LOSS_RTOL)
    assert one["loss"][-1] < one["loss"][0]  # it trained


def test_torch_devices_above_one_is_a_clear_error():
    if keras.backend.backend() != "torch":
        code = ("from keras_attn.training.backends import select_backend; select_backend('torch')\n"
                "from keras_attn.training.distribution import data_parallel; data_parallel(2)")
        _needs("torch")
        result = subprocess.run([sys.executable, "-c", code], env=_env("torch"),
                                capture_output=True, text=True, timeout=300)
        assert "--devices above 1 runs on the backends ('jax', 'tensorflow')" in result.stderr
        assert "Received: backend='torch', devices=2" in result.stderr


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_devices_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match=rf"devices must be a positive integer.*{bad!r}"):
        distribution.data_parallel(bad)


def test_one_device_changes_nothing():
    with distribution.data_parallel(1):
        pass
    if keras.backend.backend() == "jax":
        assert keras.distribution.distribution() is None


def test_too_many_devices_names_what_the_machine_shows():
    with pytest.raises(ValueError, match=r"--devices 64 needs 64 devices; this machine shows"):
        distribution.data_parallel(64)


def test_a_process_cannot_switch_backends():
    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    with pytest.raises(ValueError, match=rf"already imported .* Set KERAS_BACKEND={other}"):
        backends.select_backend(other)
    assert backends.select_backend(keras.backend.backend()) == keras.backend.backend()


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match=r"backend must be one of .*Received: backend='mxnet'"):
        backends.check_backend("mxnet")


def test_one_machine_needs_no_multi_host_settings():
    assert distribution.multi_host_settings({}) is None
    assert distribution.initialize_multi_host({}) is None  # the single-host path: no-op


def test_partial_multi_host_settings_name_the_missing_ones():
    with pytest.raises(ValueError, match="missing.*KERAS_DISTRIBUTION_PROCESS_ID"):
        distribution.multi_host_settings({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234",
                                          "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"})


def test_a_one_process_jax_job_initializes_through_jax_distributed():
    """The multi-host code path with one process on this machine: the coordinator is itself."""
    _needs("jax")
    code = ("from keras_attn.training.backends import select_backend; select_backend('jax')\n"
            "from keras_attn.training.distribution import initialize_multi_host\n"
            "settings = initialize_multi_host()\n"
            "import jax; print(settings['num_processes'], jax.process_count(), "
            "jax.process_index())\n")
    env = {**_env("jax"), "KERAS_DISTRIBUTION_JOB_ADDRESSES": "127.0.0.1:29517",
           "KERAS_DISTRIBUTION_NUM_PROCESSES": "1", "KERAS_DISTRIBUTION_PROCESS_ID": "0"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["1", "1", "0"]


def _task_csv(tmp_path):
    task = make_reference_task(48, seed=0)
    data = tmp_path / "task.csv"
    with open(data, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows((text, "ab"[label]) for text, label in
                         zip(task.texts, task.labels, strict=True))
    return data


def test_two_devices_train_with_the_clis_defaults_on_tensorflow(tmp_path):
    """XLA is on by default, and TensorFlow's MirroredStrategy cannot run under it (issue 23:
    "tf.Variable on a different device"): the run turns it off and says so in one line."""
    result = subprocess.run(
        [sys.executable, "-m", "keras_attn.cli", "train", "--data", str(_task_csv(tmp_path)),
         "--out", str(tmp_path / "run"), "--epochs", "1", "--layers", "1", "--heads", "2",
         "--d-model", "16", "--ff-dim", "32", "--max-len", "24", "--batch-size", "16",
         "--vocab-size", "200", "--devices", "2"],
        env=_env("tensorflow"), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "backend tensorflow, 2 device(s)" in result.stdout
    assert "XLA is off for this run: TensorFlow's MirroredStrategy over 2 devices" in \
        result.stdout
    record = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert record["devices"] == 2 and "results" in record


def test_train_on_jax_with_two_devices_then_export_through_tensorflow(tmp_path):
    """`keras-attn train --backend jax --devices 2 --export`: run.json records both, the export
    (made by a TensorFlow child process) passes its battery, and its ONNX file matches the
    model as JAX trained it."""
    _needs("jax")
    data = _task_csv(tmp_path)
    env = {key: value for key, value in _env("tensorflow").items() if key != "KERAS_BACKEND"}
    result = subprocess.run(
        [sys.executable, "-m", "keras_attn.cli", "train", "--data", str(data), "--out",
         str(tmp_path / "run"), "--epochs", "1", "--layers", "1", "--heads", "2", "--d-model",
         "16", "--ff-dim", "32", "--max-len", "24", "--batch-size", "16", "--vocab-size", "200",
         "--no-jit", "--backend", "jax", "--devices", "2", "--export", str(tmp_path / "model")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert (record["backend"], record["devices"]) == ("jax", 2)
    assert "backend jax, 2 device(s)" in result.stdout
    assert (tmp_path / "model" / "1" / "model.onnx").is_file()
    line = next(line for line in result.stdout.splitlines()
                if line.startswith("[export] parity against jax"))
    assert float(line.split("max |diff| ")[1].split()[0]) <= 1e-5, line
