"""Load test of `keras-attn serve`: requests/s and p50/p99 latency, with and without dynamic
batching, and the server's memory over many requests.

    python benchmarks/serving_load.py [--quick] [--json PATH] [--requests N]

One classifier (the benchmarks' "small" config: 2 blocks, d_model 128, max_len 128) is trained
for nothing (random weights: speed does not depend on them), exported with a word tokenizer,
and served three ways, each in its own `keras-attn serve` process on a free loopback port:

    one at a time         --max-batch-size 1 --threads 1   one request runs at a time
    unbatched             --max-batch-size 1               each request alone, two at a time
    batched               --max-batch-size 32              dynamic batching (batches form
                                                           while both threads are busy)
    batched, 2 ms delay   ... --max-queue-delay-ms 2       a free thread waits 2 ms for more

The four servers run side by side; rounds are interleaved and each server keeps its best
round per concurrency (see `run`). A closed-loop client keeps 1, 8 or 32 requests in flight
(asyncio, one keep-alive connection per request slot, prebuilt bytes, so that it costs the
server's CPUs little) and sends Open Inference Protocol requests holding one 64-token text each
(`text`, BYTES, tokenized by the server). Memory: the batched server's resident set size after
a warm-up and after --memory-requests more requests (10,000 by default, 1,000 with --quick).

The client runs on the same machine as the server and takes CPU from it: the figures are what
one machine serving itself measures, a lower bound on the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
TEXT_TOKENS = 64
CONCURRENCY = (1, 8, 32)
SERVERS = {
    "one at a time": ["--max-batch-size", "1", "--threads", "1"],
    "unbatched": ["--max-batch-size", "1"],
    "batched": ["--max-batch-size", "32"],
    "batched, 2 ms delay": ["--max-batch-size", "32", "--max-queue-delay-ms", "2"],
}
# The benchmarks' two configurations (benchmarks/run.py), at max_len 128.
MODELS = {"small": {"d_model": 128, "num_heads": 4, "ff_dim": 512, "num_layers": 2},
          "tiny": {"d_model": 64, "num_heads": 2, "ff_dim": 128, "num_layers": 1}}
WORDS = ("the a dog cat ball box it was very happy sad hungry excited near hit loved toy park "
         "ran sat on under big small red blue green old new good bad day night sun moon tree "
         "house car road river hill bird fish water food play sleep jump walk fast slow").split()


def export_model(folder: Path, model: str = "small") -> Path:
    """The classifier `MODELS[model]`, exported as <folder>/bench/1 with a word tokenizer."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    import keras

    import export
    import keras_attn as ka
    from export.artifact.tokenizer import train_tokenizer

    corpus = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))]
    tokenizer = train_tokenizer(corpus, model="word", vocab_size=len(WORDS) + 2)
    keras.utils.set_random_seed(0)
    config = ka.ModelConfig(vocab_size=tokenizer.vocab_size, max_len=128, num_classes=2,
                            **MODELS[model])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = export.export_model(ka.build_classifier(config), folder / "bench",
                                     tokenizer=tokenizer, class_names=["neg", "pos"])
    return result.path.parent


def texts(count: int, seed: int = 0) -> list[str]:
    """`count` texts of exactly TEXT_TOKENS known words each."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, TEXT_TOKENS)) for _ in range(count)]


def request_bytes(port: int, text: str) -> bytes:
    body = json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                   "data": [text]}]}).encode()
    return (f"POST /v2/models/bench/infer HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


class Server:
    """`keras-attn serve` in a subprocess on a free loopback port."""

    def __init__(self, root: Path, flags: list[str]) -> None:
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            self.port = probe.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keras_attn.cli", "serve", str(root), "--host", HOST,
             "--port", str(self.port), "--no-grpc", *flags],  # HTTP is what is measured
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/v2/health/ready",
                                            timeout=2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(self.process.stderr.read().decode()) from None
                time.sleep(0.2)
        raise RuntimeError("the server did not become ready in 120 s")

    def rss_mib(self) -> float:
        """The server's resident set size now (Linux /proc)."""
        from benchmarks.streaming_memory import proc_status_mib

        return proc_status_mib("VmRSS", self.process.pid)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


async def _client(port: int, payloads: list[bytes], count: int, latencies: list[float],
                  counter: list[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while counter[0] < count:
            counter[0] += 1
            payload = payloads[counter[0] % len(payloads)]
            start = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the server answered {head[:60]!r}")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


def load(port: int, payloads: list[bytes], concurrency: int, count: int) -> dict[str, float]:
    """`count` requests with `concurrency` in flight: requests/s, p50 and p99 latency (ms)."""
    latencies: list[float] = []
    counter = [0]

    async def run() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(_client(port, payloads, count, latencies, counter)
                               for _ in range(concurrency)))
        return time.perf_counter() - start

    seconds = asyncio.run(run())
    milliseconds = np.array(latencies) * 1000
    return {"requests": len(latencies), "requests_per_s": len(latencies) / seconds,
            "p50_ms": float(np.percentile(milliseconds, 50)),
            "p99_ms": float(np.percentile(milliseconds, 99))}


def run(quick: bool, requests: int | None, memory_requests: int | None,
        model: str = "small", rounds: int | None = None) -> dict:
    """All four servers run side by side; rounds are interleaved (every server and concurrency
    once per round) and each keeps its best round by requests/s, as benchmarks/run.py does, so
    that a burst of other work on a shared machine spoils one round, not one contender."""
    requests = requests or (300 if quick else 1000)
    memory_requests = memory_requests or (1000 if quick else 10_000)
    rounds = rounds or (1 if quick else 3)
    with tempfile.TemporaryDirectory(prefix="serving-load-") as folder:
        root = export_model(Path(folder), model)
        servers = {}
        try:
            for name, flags in SERVERS.items():
                servers[name] = Server(root, flags)
            payloads = {name: [request_bytes(server.port, text) for text in texts(256)]
                        for name, server in servers.items()}
            for name, server in servers.items():
                load(server.port, payloads[name], 8, 100)  # warm-up
            best: dict[str, dict[str, dict]] = {name: {} for name in servers}
            for _ in range(rounds):
                for concurrency in CONCURRENCY:
                    for name, server in servers.items():
                        figures = load(server.port, payloads[name], concurrency, requests)
                        kept = best[name].get(str(concurrency))
                        if kept is None or figures["requests_per_s"] > kept["requests_per_s"]:
                            best[name][str(concurrency)] = figures
            batched = servers["batched"]
            before = batched.rss_mib()
            load(batched.port, payloads["batched"], 32, memory_requests)
            memory = {"requests": memory_requests, "rss_before_mib": before,
                      "rss_after_mib": batched.rss_mib()}
        finally:
            for server in servers.values():
                server.stop()
    results = {"model": {"name": model, **MODELS[model], "max_len": 128},
               "requests_per_level": requests, "rounds": rounds, "text_tokens": TEXT_TOKENS,
               "cores": os.cpu_count(), "servers": best, "memory": memory}
    top, unbatched = best["batched"]["32"], best["unbatched"]["32"]
    results["goal"] = {
        "throughput_ratio": top["requests_per_s"] / unbatched["requests_per_s"],
        "p99_ratio": top["p99_ms"] / unbatched["p99_ms"],
    }
    return results


def table(results: dict) -> str:
    lines = ["| server | concurrency | requests/s | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|"]
    for name, levels in results["servers"].items():
        for concurrency, figures in levels.items():
            lines.append(f"| {name} | {concurrency} | {figures['requests_per_s']:.0f} | "
                         f"{figures['p50_ms']:.1f} | {figures['p99_ms']:.1f} |")
    goal, memory = results["goal"], results["memory"]
    lines += ["", f"At concurrency 32, batched vs unbatched: {goal['throughput_ratio']:.2f}x "
              f"the requests/s (goal >= 3x), p99 {goal['p99_ratio']:.2f}x (goal <= 0.5x).",
              f"Memory: RSS {memory['rss_before_mib']:.0f} MiB after warm-up, "
              f"{memory['rss_after_mib']:.0f} MiB after {memory['requests']:,} more requests."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one round of 300 requests per level (default: 3 rounds of 1000)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--requests", type=int, help="requests per server and concurrency")
    parser.add_argument("--memory-requests", type=int)
    parser.add_argument("--model", choices=sorted(MODELS), default="small")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    results = run(args.quick, args.requests, args.memory_requests, args.model, args.rounds)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
