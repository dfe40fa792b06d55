"""intyg.web.batching: concurrent submissions share one call of ``run``; each caller gets
its own result or exception; a failed batch is retried item by item (``isolating``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from intyg.web.batching import Batcher, isolating


class Recorder:
    """A ``run`` that doubles numbers, refuses negative ones and records its batches."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.hold = hold

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if self.hold is not None:
            self.hold.wait(5)
        return [ValueError(f"negative {i}") if i < 0 else 2 * i for i in items]


def test_submissions_of_one_loop_turn_share_one_batch() -> None:
    run = Recorder()
    batcher = Batcher(run)

    async def main() -> list[int]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(5)))

    assert asyncio.run(main()) == [0, 2, 4, 6, 8]
    assert run.batches == [[0, 1, 2, 3, 4]]


def test_an_item_exception_reaches_only_its_caller() -> None:
    batcher = Batcher(Recorder())

    async def main() -> list[object]:
        return await asyncio.gather(
            *(batcher.submit(i) for i in (1, -1, 3)), return_exceptions=True
        )

    first, bad, third = asyncio.run(main())
    assert (first, third) == (2, 6)
    assert isinstance(bad, ValueError) and str(bad) == "negative -1"


def test_a_failing_run_fails_every_caller_of_its_batch() -> None:
    def run(items: Sequence[int]) -> list[int]:
        raise RuntimeError("database down")

    batcher: Batcher[int, int] = Batcher(run)

    async def main() -> list[object]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)

    assert [str(result) for result in asyncio.run(main())] == ["database down"] * 3


def test_items_submitted_while_a_batch_runs_form_the_next_batch() -> None:
    hold = threading.Event()
    run = Recorder(hold)
    batcher = Batcher(run)

    async def main() -> list[int]:
        first = asyncio.ensure_future(batcher.submit(1))
        while not run.batches:  # the first batch is in the worker thread, held there
            await asyncio.sleep(0.001)
        later = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3)]
        await asyncio.sleep(0.01)
        assert run.batches == [[1]]  # nothing else starts while a batch is in flight
        hold.set()
        return [await first, *[await f for f in later]]

    assert asyncio.run(main()) == [2, 4, 6]
    assert run.batches == [[1], [2, 3]]


def test_max_batch_splits_a_burst() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=2)

    async def main() -> list[int]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(5)))

    assert asyncio.run(main()) == [0, 2, 4, 6, 8]
    assert run.batches == [[0, 1], [2, 3], [4]]


def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    hold = threading.Event()
    run = Recorder(hold)
    batcher = Batcher(run)

    async def main() -> int:
        doomed = asyncio.ensure_future(batcher.submit(1))
        kept = asyncio.ensure_future(batcher.submit(2))
        while not run.batches:
            await asyncio.sleep(0.001)
        doomed.cancel()
        hold.set()
        return await kept

    assert asyncio.run(main()) == 4


def test_isolating_runs_the_items_of_a_failed_batch_one_by_one() -> None:
    calls: list[list[int]] = []

    def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if any(i < 0 for i in items):
            raise ValueError("a bad item spoils the statement")
        return [2 * i for i in items]

    results = isolating(run)([1, -1, 3])
    assert results[0] == 2 and results[2] == 6
    assert isinstance(results[1], ValueError)
    assert calls == [[1, -1, 3], [1], [-1], [3]]


def test_isolating_raises_a_lone_item_failure_as_it_is() -> None:
    def run(items: Sequence[int]) -> list[int]:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        isolating(run)([1])


class Down(Exception):
    pass


def test_isolating_passes_shared_failures_to_the_whole_batch() -> None:
    calls: list[list[int]] = []

    def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        raise Down("database down")

    with pytest.raises(Down):
        isolating(run, (Down,))([1, 2, 3])
    assert calls == [[1, 2, 3]]  # not retried item by item


def test_batches_of_different_event_loops_are_kept_apart() -> None:
    run = Recorder()
    batcher = Batcher(run)
    results: dict[str, list[int]] = {}

    def in_thread(name: str, items: list[int]) -> None:
        async def main() -> list[int]:
            return await asyncio.gather(*(batcher.submit(i) for i in items))

        results[name] = asyncio.run(main())

    threads = [
        threading.Thread(target=in_thread, args=("a", [1, 2])),
        threading.Thread(target=in_thread, args=("b", [10, 20])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {"a": [2, 4], "b": [20, 40]}
    assert sorted(map(sorted, run.batches)) == [[1, 2], [10, 20]]
