"""Dynamic batching: token-id requests that arrive together run through onnxruntime together.

A request is a checked int32 batch `[n, length]` (see `export.artifact.token_ids.check_token_ids`).
The
batcher queues its rows. Whenever one of its `threads` is free it takes queued rows of similar
length (always including the oldest row, so none waits forever): its share of the queue among
the threads, at most `max_batch_size`. It pads them with id 0 to their own longest row and
runs them as one batch; two threads run two batches on two cores (onnxruntime releases the GIL
while it computes). While every thread is busy, requests queue up, so under load batches grow
by themselves. `max_queue_delay_ms` makes a free thread also wait for more rows, until the
oldest queued row has waited that long (0, the default, never waits: at low load a request runs
at once). Rows come back to their own request, cut to that request's length.

A row's answer does not depend on its batch-mates or on padding (the export's parity battery
checks both), so batching changes no result beyond float rounding. With `max_batch_size=1`
every request runs on its own (no batching): the baseline the load test compares against.

NumPy and the standard library only, like the rest of the serving side.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
from collections.abc import Callable

import numpy as np

from export.artifact.token_ids import PADDING_ID


@dataclasses.dataclass
class _Request:
    ids: np.ndarray  # int32 [n, length]
    future: asyncio.Future
    arrived: float  # event-loop time of submit
    rows: list[np.ndarray | None] = dataclasses.field(default_factory=list)
    missing: int = 0


class DynamicBatcher:
    """Queues checked token-id batches and runs them in length-sorted batches on a thread pool.

    Args:
        run: the model: int32 `[batch, length]` -> float32 logits `[batch, ...]` (a classifier's
            `[batch, num_classes]` or a language model's `[batch, length, vocab_size]`).
        max_batch_size: the most rows one call of `run` gets; 1 turns batching off.
        max_queue_delay_ms: how long the first queued row may wait for more rows while threads
            are free and the batch is not full; 0 runs what is there at once.
        threads: how many batches may run at the same time (one per core suits onnxruntime
            sessions with one intra-op thread).
        on_batch: called as each batch starts, with its number of rows and the seconds each
            row waited since its request was submitted (`export.serving.metrics`).

    Raises:
        ValueError: a non-positive max_batch_size or threads, or a negative delay.

    Example:
        >>> batcher = DynamicBatcher(predictor.predict, max_batch_size=32)   # doctest: +SKIP
        >>> logits = await batcher.submit(ids)                              # doctest: +SKIP
    """

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], max_batch_size: int = 32,
                 max_queue_delay_ms: float = 0.0, threads: int = 2,
                 on_batch: Callable[[int, list[float]], None] | None = None) -> None:
        for name, value in (("max_batch_size", max_batch_size), ("threads", threads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if not max_queue_delay_ms >= 0:
            raise ValueError("max_queue_delay_ms must be >= 0. Received: "
                             f"max_queue_delay_ms={max_queue_delay_ms!r}")
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_queue_delay = max_queue_delay_ms / 1000
        self.threads = threads
        self.on_batch = on_batch
        self._executor = concurrent.futures.ThreadPoolExecutor(threads, "batcher")
        self._pending: list[tuple[_Request, int]] = []  # (request, row index), arrival order
        self._arrived: asyncio.Event | None = None
        self._freed: asyncio.Event | None = None  # set when a batch finishes
        self._busy = 0  # batches running now
        self._loop_task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    async def submit(self, ids: np.ndarray) -> np.ndarray:
        """Logits for `ids` (int32 `[n, length]`, already checked), once its rows have run.

        Returns:
            float32 `[n, ...]`, as `run(ids)` would give.
        """
        self._start()
        loop = asyncio.get_running_loop()
        request = _Request(ids, loop.create_future(), loop.time(), [None] * len(ids), len(ids))
        self._pending.extend((request, row) for row in range(len(ids)))
        self._arrived.set()
        return await request.future

    async def close(self) -> None:
        """Runs every queued row, waits for running batches, then stops the threads."""
        while self._pending or self._running:
            await asyncio.sleep(0.001)
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        self._executor.shutdown(wait=True)

    def _start(self) -> None:
        if self._loop_task is None:  # created inside the server's event loop
            self._arrived = asyncio.Event()
            self._freed = asyncio.Event()
            self._loop_task = asyncio.get_running_loop().create_task(self._dispatch())

    async def _dispatch(self) -> None:
        while True:
            await self._arrived.wait()
            while self._busy == self.threads:  # wait for a free thread
                self._freed.clear()
                await self._freed.wait()
            if len(self._pending) < self.max_batch_size and self.max_queue_delay > 0:
                # The delay counts from the oldest row's arrival: rows left over from the
                # last batch have waited already.
                deadline = self._pending[0][0].arrived + self.max_queue_delay
                while len(self._pending) < self.max_batch_size:
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        break
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), remaining)
                    except asyncio.TimeoutError:
                        break
            # Each thread's share of the queue: on a CPU a bigger batch saves little per row,
            # so rows are not piled into one batch on one core while the other is free or
            # frees up soon. Every free thread gets its batch now.
            share = min(self.max_batch_size, -(-len(self._pending) // self.threads))
            while self._pending and self._busy < self.threads:
                self._busy += 1
                task = asyncio.get_running_loop().create_task(self._run_batch(self._take(share)))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if self._pending:  # rows left for the next free thread
                self._arrived.set()
            else:
                self._arrived.clear()

    def _take(self, size: int) -> list[tuple[_Request, int]]:
        """The next batch: `size` queued rows of similar length, always including the oldest
        row (so that no row waits behind ever newer ones)."""
        oldest = self._pending[0]
        by_length = sorted(self._pending, key=lambda item: item[0].ids.shape[1])
        start = next(i for i, item in enumerate(by_length) if item is oldest)
        start = max(0, min(start, len(by_length) - size))
        rows = by_length[start: start + size]
        taken = {id(item) for item in rows}
        self._pending = [item for item in self._pending if id(item) not in taken]
        return rows

    async def _run_batch(self, rows: list[tuple[_Request, int]]) -> None:
        try:
            length = max(request.ids.shape[1] for request, _ in rows)
            batch = np.full((len(rows), length), PADDING_ID, np.int32)
            for index, (request, row) in enumerate(rows):
                batch[index, : request.ids.shape[1]] = request.ids[row]
            loop = asyncio.get_running_loop()
            if self.on_batch is not None:
                now = loop.time()
                self.on_batch(len(rows), [now - request.arrived for request, _ in rows])
            try:
                logits = await loop.run_in_executor(self._executor, self.run, batch)
            except Exception as error:  # every request in the batch gets the error
                for request, _ in rows:
                    if not request.future.done():
                        request.future.set_exception(error)
                return
            for index, (request, row) in enumerate(rows):
                # A language model's logits have a length axis: cut it back to the request's.
                output = logits[index] if logits.ndim == 2 else logits[index,
                                                                      : request.ids.shape[1]]
                request.rows[row] = output
                request.missing -= 1
                if request.missing == 0 and not request.future.done():
                    request.future.set_result(np.stack(request.rows))
        finally:
            self._busy -= 1
            self._freed.set()
