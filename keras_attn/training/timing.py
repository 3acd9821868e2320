"""Phases of a job, each logged with its duration."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def phase(name: str, seconds: dict[str, float], log: Callable[[str], None]) -> Iterator[None]:
    """Logs a phase's start and its duration, and records the duration in `seconds`."""
    log(f"[{name}] ...")
    start = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - start
    log(f"[{name}] done in {seconds[name]:.1f} s")
