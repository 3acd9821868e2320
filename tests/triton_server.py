"""A real `tritonserver` for the tests: the one the PyPI package `nvidia-pytriton` ships
(Triton 2.51, Python backend only), from a venv of its own, on free loopback ports.

pytriton pins numpy < 2, so Triton's Python cannot be the suite's: `.ci/triton-venv` makes
`.venv-triton` (nvidia-pytriton, numpy < 2, onnxruntime, tokenizers; `.ci/triton-
requirements.txt`), or `KERAS_ATTN_TRITON_VENV` names another. Where neither exists the tests
that need it are skipped, saying how to make it.

What the bundled server needs, as pytriton itself arranges it (../shared/TRITON.md):
- a copy of its `bin`, `backends` and `caches`, with the Python backend's stub for this
  Python (`python_backend_stubs/3.X/triton_python_backend_stub`) put in `backends/python/`;
- `LD_LIBRARY_PATH` with the wheel's `nvidia_pytriton.libs` and the interpreter's `LIBDIR`;
- the venv's `bin` first on `PATH`, so that the models' `model.py` runs in the venv's Python;
- its own /dev/shm prefix, its own ports, and `--model-control-mode=explicit`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from repo_paths import REPO_ROOT

VENV_VARIABLE = "KERAS_ATTN_TRITON_VENV"
HOW_TO_MAKE = "bash .ci/triton-venv (makes .venv-triton)"
START_TIMEOUT_S = 90


def triton_venv() -> Path | None:
    """The venv with nvidia-pytriton: $KERAS_ATTN_TRITON_VENV, else .venv-triton; None if
    neither holds a Python with pytriton."""
    venv = Path(os.environ.get(VENV_VARIABLE) or REPO_ROOT / ".venv-triton")
    python = venv / "bin" / "python"
    if not python.is_file():
        return None
    found = subprocess.run([str(python), "-c", "import pytriton"], capture_output=True)
    return venv if found.returncode == 0 else None


def _layout(venv: Path) -> dict:
    """Where the venv's pytriton keeps the server, its stubs and libraries."""
    code = ("import json, os, sys, sysconfig, pytriton\n"
            "root = os.path.dirname(pytriton.__file__)\n"
            "print(json.dumps({'server': os.path.join(root, 'tritonserver'),\n"
            "  'libs': os.path.join(os.path.dirname(root), 'nvidia_pytriton.libs'),\n"
            "  'libdir': sysconfig.get_config_var('LIBDIR'),\n"
            "  'python': f'{sys.version_info[0]}.{sys.version_info[1]}'}))")
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class TritonServer:
    """A running server: its loopback ports, its log file, and the process."""

    http_port: int
    grpc_port: int
    metrics_port: int
    log: Path
    process: subprocess.Popen

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_triton(venv: Path, repository: Path, models: list[str],
                   scratch: Path) -> Iterator[TritonServer]:
    """Starts tritonserver on `repository`, loading `models`, waits until it is ready, and
    stops it (SIGTERM, then SIGKILL after 20 s) when the block ends.

    Raises:
        RuntimeError: it exited or was not ready within START_TIMEOUT_S, with its log's end.
    """
    layout = _layout(venv)
    server = scratch / "tritonserver"
    for part in ("bin", "backends", "caches"):
        shutil.copytree(Path(layout["server"]) / part, server / part, symlinks=True)
    stub = (Path(layout["server"]) / "python_backend_stubs" / layout["python"]
            / "triton_python_backend_stub")
    shutil.copy2(stub, server / "backends" / "python" / stub.name)
    ports = [free_port() for _ in range(3)]
    log = scratch / "tritonserver.log"
    env = {**os.environ,
           "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "LD_LIBRARY_PATH": os.pathsep.join([layout["libs"], layout["libdir"]]),
           "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    command = [str(server / "bin" / "tritonserver"),
               f"--model-repository={repository}",
               f"--backend-directory={server / 'backends'}",
               f"--cache-directory={server / 'caches'}",
               "--http-address=127.0.0.1", f"--http-port={ports[0]}",
               "--grpc-address=127.0.0.1", f"--grpc-port={ports[1]}",
               "--metrics-address=127.0.0.1", f"--metrics-port={ports[2]}",
               "--allow-gpu-metrics=false",
               f"--backend-config=python,shm-region-prefix-name=ka{uuid.uuid4().hex[:12]}",
               "--model-control-mode=explicit", *(f"--load-model={name}" for name in models),
               "--disable-auto-complete-config", "--exit-timeout-secs=10", "--log-verbose=0"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    running = TritonServer(*ports, log, process)
    try:
        _wait_ready(running)
        yield running
    finally:
        _stop(process)


def _wait_ready(server: TritonServer) -> None:
    import urllib.request

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"tritonserver exited with code {server.process.returncode} "
                               f"before it was ready:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://{server.http_url}/v2/health/ready",
                                        timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"tritonserver was not ready after {START_TIMEOUT_S} s:\n"
                       f"{server.log_tail()}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
