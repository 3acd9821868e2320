"""Shared pytest setup: quiet TensorFlow, deterministic seeds, hypothesis profile, and how
many pytest-xdist workers `-n auto` (pyproject.toml's addopts) starts."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "keras_attn",
    deadline=None,
    max_examples=15,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("keras_attn")


# Each worker imports TensorFlow (about 0.5 GB) and runs its own models; most tests are bound by
# one Python thread, so one worker per core uses the cores, and more than 4 buys little.
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per CPU core, at most MAX_WORKERS (pytest-xdist hook)."""
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
