"""export/serving/batching.py: requests that arrive together run together, in batches of similar
length,
and each gets back exactly its own rows: the answers of `export.runtime.predictor` for its ids
alone."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from export import runtime
from export.serving.batching import DynamicBatcher
from export.verification.parity import TOLERANCE
from tests.export_cases import CLASSIFIER, LANGUAGE_MODEL, exported


class Recorder:
    """`predictor.predict`, recording the shape of every batch it is given."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor
        self.shapes: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        with self.lock:
            self.shapes.append(ids.shape)
        return self.predictor.predict(ids)


def requests(seed: int, count: int, max_len: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 50, (int(rng.integers(1, 4)), int(rng.integers(1, max_len + 1))),
                         dtype=np.int32) for _ in range(count)]


TIMEOUT_S = 60  # a request that never gets its answer fails the test instead of hanging it


async def submit_all(batcher: DynamicBatcher, batches: list[np.ndarray]) -> list[np.ndarray]:
    try:
        return await asyncio.wait_for(
            asyncio.gather(*(batcher.submit(ids) for ids in batches)), TIMEOUT_S)
    finally:
        await asyncio.wait_for(batcher.close(), TIMEOUT_S)


@pytest.mark.parametrize("case", [CLASSIFIER, LANGUAGE_MODEL])
def test_concurrent_requests_get_their_own_answers(case):
    predictor = runtime.load(exported(case)[1].path)
    recorder = Recorder(predictor)
    batches = requests(seed=1, count=40)
    batcher = DynamicBatcher(recorder, max_batch_size=16, max_queue_delay_ms=5, threads=2)
    answers = asyncio.run(submit_all(batcher, batches))
    for ids, answer in zip(batches, answers, strict=True):
        expected = predictor.predict(ids)
        assert answer.shape == expected.shape  # a language model's cut to the request's length
        np.testing.assert_allclose(answer, expected, rtol=0, atol=TOLERANCE)
    rows = sum(len(ids) for ids in batches)
    assert sum(shape[0] for shape in recorder.shapes) == rows
    assert all(shape[0] <= 16 for shape in recorder.shapes)
    assert len(recorder.shapes) < len(batches) / 2  # batched, not one call per request


def test_rows_are_batched_by_length():
    predictor = runtime.load(exported(CLASSIFIER)[1].path)
    recorder = Recorder(predictor)
    short = [np.full((1, 2), 3, np.int32) for _ in range(8)]
    long = [np.full((1, 16), 4, np.int32) for _ in range(8)]
    mixed = [ids for pair in zip(short, long, strict=True) for ids in pair]  # interleaved
    batcher = DynamicBatcher(recorder, max_batch_size=8, max_queue_delay_ms=0, threads=1)
    asyncio.run(submit_all(batcher, mixed))
    assert sorted(recorder.shapes) == [(8, 2), (8, 16)]  # not two batches padded to 16


@pytest.mark.parametrize("delay_ms", [0, 5])
def test_queued_rows_are_shared_among_free_threads(delay_ms):
    # Eight rows queued at once and two free threads: two batches of four on two cores, not
    # one batch of eight on one core while the other idles. With a queue delay as well, the
    # rows left after the first batch must still start (the batcher must not wait for a new
    # request to notice them).
    predictor = runtime.load(exported(CLASSIFIER)[1].path)
    recorder = Recorder(predictor)
    rows = [np.full((1, 5), 3 + index, np.int32) for index in range(8)]
    batcher = DynamicBatcher(recorder, max_batch_size=32, max_queue_delay_ms=delay_ms,
                             threads=2)
    asyncio.run(submit_all(batcher, rows))
    assert recorder.shapes == [(4, 5), (4, 5)]


def test_max_batch_size_one_runs_every_request_alone():
    predictor = runtime.load(exported(CLASSIFIER)[1].path)
    recorder = Recorder(predictor)
    batches = [ids[:1] for ids in requests(seed=2, count=10)]
    batcher = DynamicBatcher(recorder, max_batch_size=1, max_queue_delay_ms=1, threads=2)
    answers = asyncio.run(submit_all(batcher, batches))
    assert sorted(recorder.shapes) == sorted(ids.shape for ids in batches)
    for ids, answer in zip(batches, answers, strict=True):
        np.testing.assert_array_equal(answer, predictor.predict(ids))


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on():
    calls = []

    def run(ids: np.ndarray) -> np.ndarray:
        calls.append(ids.shape)
        if len(calls) == 1:
            raise RuntimeError("the model failed")
        return ids.astype(np.float32)

    async def scenario():
        batcher = DynamicBatcher(run, max_batch_size=4, max_queue_delay_ms=0, threads=1)
        first = await asyncio.gather(batcher.submit(np.ones((1, 3), np.int32)),
                                     return_exceptions=True)
        second = await batcher.submit(np.full((2, 3), 7, np.int32))
        await batcher.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert isinstance(first[0], RuntimeError) and str(first[0]) == "the model failed"
    np.testing.assert_array_equal(second, np.full((2, 3), 7, np.float32))


def test_close_finishes_what_is_queued():
    async def scenario():
        batcher = DynamicBatcher(lambda ids: ids.astype(np.float32), max_batch_size=4,
                                 max_queue_delay_ms=200, threads=1)
        pending = asyncio.ensure_future(batcher.submit(np.full((1, 2), 5, np.int32)))
        await asyncio.sleep(0.01)  # queued, waiting for batch-mates
        await asyncio.wait_for(batcher.close(), TIMEOUT_S)
        return await asyncio.wait_for(pending, 1)

    np.testing.assert_array_equal(asyncio.run(scenario()), [[5, 5]])


@pytest.mark.parametrize("settings, name", [
    ({"max_batch_size": 0}, "max_batch_size"),
    ({"threads": 0}, "threads"),
    ({"max_queue_delay_ms": -1}, "max_queue_delay_ms"),
])
def test_bad_settings_are_refused(settings, name):
    with pytest.raises(ValueError, match=f"{name}.*Received: {name}="):
        DynamicBatcher(lambda ids: ids, **settings)
