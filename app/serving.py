"""Serving: concurrent predict requests for one prototype answered as mixed-task batches.

Every loaded classification prototype gets one `Batcher`: a bounded queue and one thread that
takes what has arrived (waiting at most `serve_max_wait_ms` after the oldest request, or until
`serve_max_batch` texts are there), runs it as ONE forward whose examples each carry their
own task (`task_ids`), and hands each request its own rows back. Prototypes have their own
batchers and threads, so one never waits for another. A full queue refuses at once with
`ServerBusyError` (HTTP 503 with `Retry-After`); a request that was accepted is always
answered, with its rows or with its own error.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

#: One text of a request: (task, (text, second text or None)).
Item = tuple[str, tuple[str, str | None]]
RunBatch = Callable[[list[Item]], list[dict[str, Any]]]


class ServerBusyError(RuntimeError):
    """The prototype's queue is full; try again after `retry_after` seconds (HTTP 503)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Answer:
    """One request's rows, and how its batch went."""

    results: list[dict[str, Any]]
    queue_ms: float  # from arrival to the start of its batch
    inference_ms: float  # the forward of the whole batch
    batch_texts: int  # texts in the batch it rode in
    batch_requests: int  # requests in that batch
    batch_tasks: int  # distinct tasks in that batch


@dataclass
class _Request:
    items: list[Item]
    future: Future[Answer]
    arrived: float = field(default_factory=time.perf_counter)


@dataclass
class BatcherStats:
    """Counters since the batcher started (for tests, benchmarks and the log)."""

    accepted: int = 0
    refused: int = 0
    answered: int = 0
    failed: int = 0
    batches: int = 0
    texts: int = 0
    largest_batch: int = 0


class Batcher:
    """Collects requests for one model and runs them as batches on its own thread.

    `run` takes a list of (task, (text, pair)) and returns one row per item, in order; it is
    only ever called from the batcher's thread, so the model needs no lock of its own.
    """

    def __init__(
        self,
        run: RunBatch,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        retry_after: float = 1.0,
        name: str = "",
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1, max_wait_ms >= 0")
        self._run = run
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1e3
        self.max_queue, self.retry_after = max_queue, retry_after
        self.name = name
        self.stats = BatcherStats()
        self._queue: deque[_Request] = deque()
        self._queued_texts = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ callers
    def submit(self, items: Sequence[Item]) -> Future[Answer]:
        """Queue one request (all its texts are answered together); a future of its `Answer`.
        Raises `ServerBusyError` when `max_queue` requests are already waiting."""
        if not items:
            raise ValueError("nothing to predict")
        request = _Request(list(items), Future())
        with self._cond:
            if self._closing:
                raise ServerBusyError(
                    f"prototype {self.name} is being reloaded; try again", self.retry_after
                )
            if len(self._queue) >= self.max_queue:
                self.stats.refused += 1
                raise ServerBusyError(
                    f"prototype {self.name}: {len(self._queue)} requests already waiting "
                    f"(PROPETL_SERVE_MAX_QUEUE={self.max_queue}); try again shortly",
                    self.retry_after,
                )
            self._queue.append(request)
            self._queued_texts += len(request.items)
            self.stats.accepted += 1
            self._cond.notify()
        return request.future

    def predict(self, items: Sequence[Item], timeout: float | None = None) -> Answer:
        """`submit` and wait for the answer (its error re-raised here)."""
        return self.submit(items).result(timeout)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def close(self, wait: bool = False) -> None:
        """Accept nothing more; what is queued is still answered, then the thread ends."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if wait:
            self._thread.join()

    # ------------------------------------------------------------ the batcher's thread
    def _take(self) -> list[_Request] | None:
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            deadline = self._queue[0].arrived + self.max_wait
            while self._queued_texts < self.max_batch and not self._closing:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch, texts = [], 0
            while self._queue and (
                not batch or texts + len(self._queue[0].items) <= self.max_batch
            ):
                request = self._queue.popleft()
                batch.append(request)
                texts += len(request.items)
                self._queued_texts -= len(request.items)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._answer(batch)
            except BaseException as err:  # never let the thread die with requests waiting
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(err)

    def _forward(self, items: list[Item]) -> tuple[list[dict[str, Any]], float]:
        """Rows of `items`, in pieces of at most `max_batch` (one request may be larger)."""
        rows: list[dict[str, Any]] = []
        started = time.perf_counter()
        for start in range(0, len(items), self.max_batch):
            rows += self._run(items[start : start + self.max_batch])
        return rows, (time.perf_counter() - started) * 1e3

    def _answer(self, batch: list[_Request]) -> None:
        started = time.perf_counter()
        items = [item for request in batch for item in request.items]
        try:
            rows, inference_ms = self._forward(items)
            if len(rows) != len(items):
                raise RuntimeError(f"the model answered {len(rows)} rows for {len(items)} texts")
        except Exception as err:
            if len(batch) == 1:
                self._fail(batch[0], err)
            else:  # someone's bad text: run each request alone so only it gets the error
                for request in batch:
                    self._answer([request])
            return
        tasks = len({task for task, _ in items})
        self.stats.batches += 1
        self.stats.texts += len(items)
        self.stats.largest_batch = max(self.stats.largest_batch, len(items))
        offset = 0
        for request in batch:
            mine = rows[offset : offset + len(request.items)]
            offset += len(request.items)
            self.stats.answered += 1
            request.future.set_result(
                Answer(
                    mine,
                    (started - request.arrived) * 1e3,
                    inference_ms,
                    len(items),
                    len(batch),
                    tasks,
                )
            )

    def _fail(self, request: _Request, err: Exception) -> None:
        self.stats.failed += 1
        request.future.set_exception(err)


class Serving:
    """One batcher per loaded prototype; a reloaded prototype gets a fresh batcher (the old
    one answers what it already accepted, then stops)."""

    def __init__(
        self,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        retry_after: float = 1.0,
    ) -> None:
        self.options = {
            "max_batch": max_batch,
            "max_wait_ms": max_wait_ms,
            "max_queue": max_queue,
            "retry_after": retry_after,
        }
        self._batchers: dict[str, tuple[object, Batcher]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls) -> Serving:
        from .settings import get_settings

        s = get_settings()
        return cls(
            max_batch=s.serve_max_batch,
            max_wait_ms=s.serve_max_wait_ms,
            max_queue=s.serve_max_queue,
            retry_after=s.serve_retry_after,
        )

    def batcher(self, key: str, owner: object, run: RunBatch) -> Batcher:
        """The batcher of `key` serving `owner` (a loaded model); a new one if `owner` changed."""
        with self._lock:
            found = self._batchers.get(key)
            if found is not None and found[0] is owner:
                return found[1]
            if found is not None:
                found[1].close()
            batcher = Batcher(run, name=key[:8], **self.options)  # type: ignore[arg-type]
            self._batchers[key] = (owner, batcher)
            return batcher

    def forget(self, key: str) -> None:
        with self._lock:
            found = self._batchers.pop(key, None)
        if found is not None:
            found[1].close()

    def stats(self) -> dict[str, BatcherStats]:
        with self._lock:
            return {key: batcher.stats for key, (_, batcher) in self._batchers.items()}


def retry_after_header(err: ServerBusyError) -> str:
    """`Retry-After` in whole seconds (at least 1)."""
    return str(max(1, math.ceil(err.retry_after)))


__all__ = [
    "Answer",
    "Batcher",
    "BatcherStats",
    "Item",
    "ServerBusyError",
    "Serving",
    "retry_after_header",
]
