"""A `keras-attn serve` process for the server tests: started on a free loopback port, with
TensorFlow, Keras and the other export-side packages made unimportable in it (the server must
never need them, and deploy/Dockerfile installs without them), and stopped with SIGTERM, as a
container runtime stops it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.export_cases import BLOCK_IMPORTS, CLASSIFIER, REPO_ROOT, build_model

HOST = "127.0.0.1"  # loopback only: the tests never listen on another address
EXPORT_SIDE = "tensorflow,keras,onnx,onnxscript,onnx_ir,tf2onnx,matplotlib"
SERVE = BLOCK_IMPORTS + "from keras_attn.cli.main import main\nsys.exit(main(sys.argv[2:]))\n"


NAME = "tiny"
CLASSES = ["negative", "neutral", "positive"]
WORDS = ("the a dog cat ball box it was very happy sad hungry excited near hit loved toy "
         "park ran sat on under big small red blue green old new good bad day night sun "
         "moon tree house car road river hill bird fish water food play sleep jump walk "
         "fast slow").split()


def export_tiny_classifier(parent: Path) -> Path:
    """parent/tiny/ with version 1: the CLASSIFIER case with a 50-id word tokenizer and three
    class names, the model every server test serves."""
    import warnings

    import export
    from export.artifact.tokenizer import train_tokenizer

    root = parent / NAME
    corpus = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))]
    tokenizer = train_tokenizer(corpus, model="word", vocab_size=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # int8 left out of a random model
        export.export_model(build_model(CLASSIFIER), root, tokenizer=tokenizer,
                            class_names=CLASSES)
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class ServerProcess:
    """`keras-attn serve ROOT --port <free> FLAGS...` in a subprocess.

    Attributes:
        url: "http://127.0.0.1:<port>".
        address: "127.0.0.1:<port>", as tritonclient takes it.
        grpc_address: "127.0.0.1:<grpc port>" (a free port unless FLAGS give --grpc-port;
            None with --no-grpc), as tritonclient.grpc takes it.
    """

    def __init__(self, root: Path, *flags: str, timeout: float = 90) -> None:
        self.port = free_port()
        self.address = f"{HOST}:{self.port}"
        self.url = f"http://{self.address}"
        if "--grpc-port" in flags:
            self.grpc_port = int(flags[flags.index("--grpc-port") + 1])
        else:
            self.grpc_port = None if "--no-grpc" in flags else free_port()
            flags = flags if self.grpc_port is None else (*flags, "--grpc-port",
                                                          str(self.grpc_port))
        self.grpc_address = None if self.grpc_port is None else f"{HOST}:{self.grpc_port}"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE, EXPORT_SIDE, "serve", str(root), "--host", HOST,
             "--port", str(self.port), *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO_ROOT)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"keras-attn serve exited with {self.process.returncode}:\n"
                                   + self.process.stdout.read())
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError("keras-attn serve did not become ready:\n"
                                   + self.process.stdout.read())
            time.sleep(0.1)

    def stop(self, timeout: float = 60) -> tuple[int, str]:
        """SIGTERM, then the exit code and everything the process printed. After its graceful
        shutdown uvicorn raises the signal again, so a clean stop ends with -SIGTERM."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return self.process.returncode, output


def served(root: Path, *flags: str):
    """A module fixture's body: `yield from served(root)` serves `root` for the module, then
    stops the server and checks that it stopped cleanly (SIGTERM, no traceback)."""
    process = ServerProcess(root, *flags)
    yield process
    code, output = process.stop()
    assert code == -signal.SIGTERM and "Traceback" not in output and "destroyed" not in output, \
        output


def call(server: ServerProcess, method: str, path: str,
         body: bytes | None = None) -> tuple[int, dict]:
    """(status, JSON answer) of one plain HTTP request."""
    request = urllib.request.Request(server.url + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
