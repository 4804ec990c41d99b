"""The batcher alone (app.serving): batching, the queue bound, errors kept to their request."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.serving import Batcher, ServerBusyError, Serving, retry_after_header


def echo(items):
    """One row per item naming its task and text (what a model would answer)."""
    return [{"task": task, "text": text} for task, (text, _) in items]


def test_concurrent_requests_share_batches_and_get_their_own_rows():
    seen: list[int] = []

    def run(items):
        seen.append(len(items))
        time.sleep(0.01)  # a forward takes a while: requests pile up meanwhile
        return echo(items)

    batcher = Batcher(run, max_batch=16, max_wait_ms=20, max_queue=100)
    with ThreadPoolExecutor(48) as pool:
        answers = list(
            pool.map(lambda i: batcher.predict([(f"task{i % 7}", (f"text {i}", None))]), range(96))
        )
    for i, answer in enumerate(answers):
        assert answer.results == [{"task": f"task{i % 7}", "text": f"text {i}"}]
    assert sum(seen) == 96 and max(seen) <= 16
    assert len(seen) < 48, f"requests were not batched: {seen}"
    assert max(a.batch_tasks for a in answers) > 1  # tasks mixed in one batch
    assert batcher.stats.answered == 96 and batcher.stats.failed == 0


def test_a_batch_waits_at_most_max_wait_for_company():
    batcher = Batcher(echo, max_batch=32, max_wait_ms=30, max_queue=10)
    started = time.perf_counter()
    answer = batcher.predict([("a", ("x", None))])
    waited = time.perf_counter() - started
    assert answer.batch_texts == 1
    assert 0.025 <= waited < 1.0, waited


def test_a_request_larger_than_max_batch_runs_in_pieces_and_stays_whole():
    sizes: list[int] = []
    batcher = Batcher(
        lambda items: sizes.append(len(items)) or echo(items),
        max_batch=4,
        max_wait_ms=0,
        max_queue=10,
    )
    items = [(f"t{i}", (str(i), None)) for i in range(10)]
    answer = batcher.predict(items)
    assert [r["text"] for r in answer.results] == [str(i) for i in range(10)]
    assert sizes == [4, 4, 2]


def test_full_queue_refuses_with_retry_after_and_answers_everything_accepted():
    gate = threading.Event()

    def run(items):
        gate.wait(10)
        return echo(items)

    batcher = Batcher(run, max_batch=1, max_wait_ms=0, max_queue=3, retry_after=2.5)
    first = batcher.submit([("a", ("0", None))])
    deadline = time.monotonic() + 5
    while batcher.waiting and time.monotonic() < deadline:  # the thread took the first
        time.sleep(0.005)
    accepted = [batcher.submit([("a", (str(i), None))]) for i in range(1, 4)]
    with pytest.raises(ServerBusyError) as refused:
        batcher.submit([("a", ("4", None))])
    assert "PROPETL_SERVE_MAX_QUEUE=3" in str(refused.value)
    assert retry_after_header(refused.value) == "3"
    gate.set()
    results = [f.result(10).results[0]["text"] for f in [first, *accepted]]
    assert results == ["0", "1", "2", "3"]
    assert batcher.stats.refused == 1 and batcher.stats.answered == 4


def test_a_bad_request_fails_alone():
    def run(items):
        if any(text == "bad" for _, (text, _) in items):
            raise ValueError("cannot read 'bad'")
        return echo(items)

    gate = threading.Barrier(6)
    batcher = Batcher(run, max_batch=8, max_wait_ms=50, max_queue=10)

    def call(text):
        gate.wait()
        try:
            return batcher.predict([("t", (text, None))]).results[0]["text"]
        except ValueError as err:
            return f"error: {err}"

    with ThreadPoolExecutor(6) as pool:
        out = list(pool.map(call, ["a", "b", "bad", "c", "d", "e"]))
    assert out == ["a", "b", "error: cannot read 'bad'", "c", "d", "e"]


def test_prototypes_have_their_own_batchers_and_do_not_wait_for_each_other():
    slow_started = threading.Event()

    def slow(items):
        slow_started.set()
        time.sleep(1.0)
        return echo(items)

    serving = Serving(max_batch=8, max_wait_ms=0, max_queue=10)
    owner_a, owner_b = object(), object()
    pending = serving.batcher("a", owner_a, slow).submit([("t", ("x", None))])
    assert slow_started.wait(5)
    started = time.perf_counter()
    serving.batcher("b", owner_b, echo).predict([("t", ("y", None))])
    assert time.perf_counter() - started < 0.5
    assert pending.result(5).results[0]["text"] == "x"
    # a reloaded prototype (another owner) gets a fresh batcher
    assert serving.batcher("b", owner_b, echo) is serving.batcher("b", owner_b, echo)
    assert serving.batcher("b", object(), echo) is not serving.batcher("b", owner_b, echo)
