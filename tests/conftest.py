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


# The longest files (each a few minutes of child processes: the other backends, the benchmark's
# smoke run, 2-device training) start first, one per worker, so that no worker is left with one
# at the end while the others idle. pytest-xdist would otherwise hand out the files with the
# most tests first, which puts these (1 to 12 tests each) last: pyproject.toml's addopts say
# --no-loadscope-reorder, so the order below is the order the workers get the files.
SLOW_FIRST = ("test_backends.py", "test_run_quick.py", "test_distribution.py")


def pytest_collection_modifyitems(session, config, items):
    """Runs SLOW_FIRST's files first (a stable sort: the order within files is kept)."""
    def rank(item):
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="session")
def tiny_model_root(tmp_path_factory):
    """saved_models/tiny/ with version 1 (`tests.serving_cases.export_tiny_classifier`),
    exported once per test process for the server tests that only read it; a test that adds
    or removes versions copies it first."""
    from tests.serving_cases import export_tiny_classifier

    return export_tiny_classifier(tmp_path_factory.mktemp("tiny"))
