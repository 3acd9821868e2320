"""Keep TensorFlow's start-up chatter out of the CLI's output, and never lose a real error.

`import tensorflow` writes C++ log lines straight to file descriptor 2 before absl's logging is
set up, so `TF_CPP_MIN_LOG_LEVEL` cannot hide them ("All log messages before
absl::InitializeLog() is called...", "oneDNN custom operations are on", "cudart_stub ... Could
not find cuda drivers"), and two copies of absl print them twice. The CLI therefore sends
descriptor 2 to a temporary file while TensorFlow is first imported, then writes back every
line that is not known start-up noise. A Python error raised by the import is raised after
descriptor 2 is restored, so it prints as usual.

Standard library only, and TensorFlow is imported only when some code imports it: `keras-attn
predict` still never imports it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
import types
from collections.abc import Iterator

# Start-up lines TensorFlow (and its CUDA stubs) print on every import, error or not.
NOISE = re.compile("|".join((
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"I\d{4} [\d:.]+ +\d+ \S+:\d+\] .*",  # any INFO line of TensorFlow's C++ logging
    r"[WE]\d{4} [\d:.]+ +\d+ \S+:\d+\] (Unable to register cu(DNN|FFT|BLAS) factory"
    r"|failed call to cuInit|TF-TRT Warning: Could not find TensorRT).*",
    r"To enable the following instructions: .* in other operations, rebuild TensorFlow with "
    r"the appropriate compiler flags\.",
)))


def is_noise(line: str) -> bool:
    """True for a known TensorFlow start-up log line (see `NOISE`), without its newline."""
    return NOISE.fullmatch(line) is not None


@contextlib.contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Within the block, lines written to file descriptor 2 are held back; on leaving it, every
    line that is not `is_noise` is written to stderr, in order. Python's `sys.stderr` goes
    through descriptor 2 too, so nothing written inside the block is lost."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            # A line ends at "\n" only: str.splitlines would also break at "\r", form feed
            # and U+2028, and drop start-up text found between them inside a real line.
            lines = re.split(r"(?<=\n)", held.read().decode("utf-8", "replace"))
            kept = [line for line in lines if line and not is_noise(line.rstrip("\r\n"))]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as the other finders do, and runs its first import inside
    `native_stderr_filtered`."""

    def find_spec(self, name: str, path=None, target: types.ModuleType | None = None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: later imports find the module in sys.modules
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run_module = loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            try:
                with native_stderr_filtered():
                    run_module(module)
            finally:
                del loader.exec_module  # back to the loader's own method

        loader.exec_module = exec_module
        return spec


def hide_tensorflow_startup_logs() -> None:
    """Make the process's first `import tensorflow` drop TensorFlow's start-up log lines.

    Does nothing if TensorFlow is imported already, or if the user asked for TensorFlow's
    INFO logs with `TF_CPP_MIN_LOG_LEVEL=0`. Calling it twice installs it once.
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    if not any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
