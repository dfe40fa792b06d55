"""Group the database work of concurrent requests (group commit; design.md "targets").

A hot endpoint that does one small, independent piece of database work per request (find a
row by key, record an outcome) spends most of that work's cost on the round trip and the
commit, not on the row. :class:`Batcher` collects the pieces that requests on one event
loop submit while the previous batch is in the database, and hands them to ``run`` as one
list, in a worker thread: one connection checkout, one round trip, one commit for all of
them. A request waits for its own result only; a quiet moment gives batches of one, so
latency does not rise with batching, and under load the batch grows by itself.

``run`` returns one result per item, in order; an item's result may be an exception, which
is raised to that item's caller alone; an exception from ``run`` itself goes to every
caller of the batch (:func:`isolating` runs the items of a failed batch one by one, so
that a bad item fails alone).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher", "isolating"]

T = TypeVar("T")
R = TypeVar("R")
Run = Callable[[Sequence[T]], Sequence[R | BaseException]]
DEFAULT_MAX_BATCH = 64


class _LoopState(Generic[T, R]):
    def __init__(self) -> None:
        self.pending: list[tuple[T, asyncio.Future[R]]] = []
        self.busy = False  # a batch is in the database or scheduled to go


class Batcher(Generic[T, R]):
    """``await batcher.submit(item)``: ``item``'s result from a batched call of ``run``."""

    def __init__(self, run: Run[T, R], *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.run = run
        self.max_batch = max_batch
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState[T, R]]
        self._states = weakref.WeakKeyDictionary()

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState()
        future: asyncio.Future[R] = loop.create_future()
        state.pending.append((item, future))
        if not state.busy:
            state.busy = True
            # Two loop turns later: the requests woken in this turn, and those whose first
            # step the connections' reads scheduled behind this one, join the batch (one
            # turn gave batches of 1.2 under load, two give 5-10).
            loop.call_soon(loop.call_soon, self._start, loop, state)
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop, state: _LoopState[T, R]) -> None:
        if not state.pending:
            state.busy = False
            return
        batch = state.pending[: self.max_batch]
        del state.pending[: self.max_batch]
        done = loop.run_in_executor(None, self.run, [item for item, _ in batch])
        done.add_done_callback(lambda finished: self._finish(loop, state, batch, finished))

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        state: _LoopState[T, R],
        batch: list[tuple[T, asyncio.Future[R]]],
        finished: asyncio.Future[Sequence[R | BaseException]],
    ) -> None:
        failure = finished.exception()
        results: Sequence[R | BaseException] = (
            [failure] * len(batch) if failure is not None else finished.result()
        )
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the request was cancelled
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        self._start(loop, state)


def isolating(run: Run[T, R], shared: tuple[type[BaseException], ...] = ()) -> Run[T, R]:
    """``run``, except that when a batch of several fails, each item is run alone, so only
    a bad item fails; exceptions of the ``shared`` types (e.g. the database is down) go to
    the whole batch as they are."""

    def guarded(items: Sequence[T]) -> Sequence[R | BaseException]:
        try:
            return run(items)
        except shared:
            raise
        except Exception:
            if len(items) == 1:
                raise
        results: list[R | BaseException] = []
        for item in items:
            try:
                results.append(run([item])[0])
            except Exception as exc:
                results.append(exc)
        return results

    return guarded
