"""ui.workers.Workers: slots are handed over first come, first served, and none leaks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from ui.workers import Busy, Workers


async def _until(check: Callable[[], bool]) -> None:
    """Poll the pool's state (a bound on a hang, not a timing)."""
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never reached")


def _queued(workers: Workers, n: int) -> Callable[[], bool]:
    return lambda: len(workers._waiters) == n


def test_waiting_calls_get_the_slot_in_arrival_order() -> None:
    async def scenario() -> list[str]:
        workers = Workers(1, timeout_s=30)
        release = threading.Event()
        order: list[str] = []
        holder = asyncio.create_task(workers.call(release.wait, 10))
        await _until(lambda: workers.busy() == 1)
        waiting = []
        for name in ("a", "b", "c"):
            waiting.append(asyncio.create_task(workers.call(order.append, name)))
            await _until(_queued(workers, len(waiting)))
        release.set()
        await asyncio.gather(holder, *waiting)
        assert workers.busy() == 0
        workers.shutdown()
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_a_waiter_past_its_deadline_is_busy_and_loses_no_slot() -> None:
    async def scenario() -> None:
        workers = Workers(1, timeout_s=30)
        release = threading.Event()
        holder = asyncio.create_task(workers.call(release.wait, 10))
        await _until(lambda: workers.busy() == 1)
        with pytest.raises(Busy):
            await workers.call(lambda: None, timeout_s=0.05)
        release.set()
        await holder
        assert workers.busy() == 0
        assert await workers.call(lambda: "next") == "next"
        assert workers.busy() == 0
        workers.shutdown()

    asyncio.run(scenario())


def test_a_thread_waiting_in_stream_sync_gets_the_slot_when_it_is_given_back() -> None:
    async def scenario() -> list[int]:
        workers = Workers(1, timeout_s=30)
        release = threading.Event()
        holder = asyncio.create_task(workers.call(release.wait, 10))
        await _until(lambda: workers.busy() == 1)
        with ThreadPoolExecutor(max_workers=1) as pool:
            items = pool.submit(lambda: list(workers.stream_sync(lambda: iter([1, 2, 3]))))
            await _until(lambda: len(workers._waiters) == 1)
            release.set()
            await holder
            result = items.result(10)
        await _until(lambda: workers.busy() == 0)
        workers.shutdown()
        return result

    assert asyncio.run(scenario()) == [1, 2, 3]
