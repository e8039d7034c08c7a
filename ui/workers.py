"""Blocking assistant calls off the event loop, bounded in number and in time.

``Workers`` owns a thread pool of ``server.worker_threads`` threads and as many
slots. A call takes a slot (waiting at most until its deadline, else ``Busy``),
runs in a pool thread and is awaited until the deadline (else ``TimedOut``).
A call that times out is abandoned, not killed (Python threads cannot be), so it
keeps its slot until it really returns: the number of threads doing assistant
work never exceeds the setting, however many requests time out, and the event
loop keeps serving other clients (health checks, other questions) meanwhile.

Waiting for a slot is first come, first served: a slot given back goes straight to the
oldest waiter (an event-loop future or, for the Gradio chat's threads, a threading event),
so under load no question is overtaken again and again, and waiters do not poll.

A dedicated pool rather than ``anyio.to_thread`` with a ``CapacityLimiter``:
anyio gives the limiter token back when a waiting call is abandoned, while the
thread goes on running, so the limiter would no longer bound the threads.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from .guard import MSG_BUSY, MSG_STORE_UNAVAILABLE, MSG_TIMEOUT

log = logging.getLogger(__name__)

T = TypeVar("T")
_END = object()
# Words in exception class names that mean "the store (or another backend) did not answer".
_UNAVAILABLE_WORDS = ("timeout", "unavailable", "connection", "connect")


class Busy(Exception):
    """No worker slot became free before the deadline."""


class TimedOut(Exception):
    """The call did not finish before the deadline (it goes on in its thread)."""


def store_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) is a timeout or connection error.

    Matches ``TimeoutError``/``ConnectionError``, httpx transport errors (the Chroma
    HTTP client) and, by class name, store errors such as a ``StoreTimeout`` or
    ``StoreUnavailable`` of ``assistant.store``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError | ConnectionError | httpx.TransportError | TimedOut):
            return True
        names = [cls.__name__.lower() for cls in type(current).__mro__]
        if any(word in name for name in names for word in _UNAVAILABLE_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return False


def failure_message(exc: BaseException) -> str | None:
    """The Chinese message for a busy pool, a deadline or an unavailable store; None otherwise."""
    if isinstance(exc, Busy):
        return MSG_BUSY
    if isinstance(exc, TimedOut):
        return MSG_TIMEOUT
    if store_unavailable(exc):
        return MSG_STORE_UNAVAILABLE
    return None


def report_failure(exc: BaseException, where: str) -> str | None:
    """Log a failed assistant call by its kind and return ``failure_message(exc)``: a bug is an
    error with its traceback; busy, deadline and store down are warnings (they have a message)."""
    message = failure_message(exc)
    if message is None:
        log.error("%s failed", where, exc_info=exc)
    else:
        log.warning("%s: %s: %s", where, type(exc).__name__, exc)
    return message


class _Waiter:
    """One caller queued for a slot; ``wake`` is called (outside the lock) once it is granted."""

    __slots__ = ("abandoned", "granted", "wake")

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake
        self.granted = False
        self.abandoned = False


class Workers:
    """A bounded pool for blocking calls, awaited with a deadline."""

    def __init__(self, threads: int, timeout_s: float, name: str = "pa-worker") -> None:
        self.threads = max(1, threads)
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._in_use = 0
        self._waiters: deque[_Waiter] = deque()

    def busy(self) -> int:
        """Slots in use (running or abandoned calls)."""
        return self._in_use

    def _take_or_queue(self, wake: Callable[[], None]) -> _Waiter | None:
        """Take a free slot (None) unless others already wait; else queue and return the waiter."""
        with self._lock:
            if self._in_use < self.threads and not self._waiters:
                self._in_use += 1
                return None
            waiter = _Waiter(wake)
            self._waiters.append(waiter)
            return waiter

    def _give_back(self) -> None:
        """Hand the slot to the oldest live waiter, or free it."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.abandoned:
                    waiter.granted = True
                    break
            else:
                self._in_use -= 1
                return
        waiter.wake()

    def _abandon(self, waiter: _Waiter) -> bool:
        """Stop waiting; True when the slot was granted meanwhile (the caller owns it now)."""
        with self._lock:
            if waiter.granted:
                return True
            waiter.abandoned = True
            return False

    async def _take_slot(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not granted.done():
                granted.set_result(None)

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(resolve)
            except RuntimeError:  # the loop is gone: nobody will use the slot
                self._give_back()

        waiter = self._take_or_queue(wake)
        if waiter is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(granted), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            if not self._abandon(waiter):
                raise Busy from None
        except asyncio.CancelledError:  # the client went away while waiting
            if self._abandon(waiter):
                self._give_back()
            raise

    def _take_slot_sync(self, deadline: float) -> None:
        event = threading.Event()
        waiter = self._take_or_queue(event.set)
        if waiter is not None and not event.wait(max(0.0, deadline - time.monotonic())):
            if not self._abandon(waiter):
                raise Busy

    def _submit(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` in the pool; the slot is given back when it returns (or never starts)."""

        def job() -> Any:
            try:
                return fn()
            finally:
                self._give_back()

        try:
            fut = self._pool.submit(job)
        except BaseException:
            self._give_back()
            raise
        fut.add_done_callback(lambda f: self._give_back() if f.cancelled() else None)
        return fut

    async def call(self, fn: Callable[..., T], *args: Any, timeout_s: float | None = None) -> T:
        """``fn(*args)`` in a pool thread; ``Busy`` / ``TimedOut`` past the deadline."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        await self._take_slot(deadline)
        fut = self._submit(lambda: fn(*args))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("%s did not return within the deadline; abandoned (slots in use %d)", fn, self.busy())
            raise TimedOut from None

    def _produce(
        self, make: Callable[[], Iterator[T]], put: Callable[[tuple[bool, Any]], None]
    ) -> threading.Event:
        """Start iterating ``make()`` in a pool thread, handing ``(ok, item)`` pairs to ``put``.

        Ends with ``(True, _END)`` or ``(False, exception)``. Setting the returned
        event stops the producer at its next item; it closes the iterator in its own thread.
        """
        stop = threading.Event()

        def produce() -> None:
            it: Iterator[T] | None = None
            try:
                it = make()
                for item in it:
                    if stop.is_set():
                        break
                    put((True, item))
                put((True, _END))
            except BaseException as exc:  # handed to the consumer, who decides
                put((False, exc))
            finally:
                close = getattr(it, "close", None)
                if callable(close):
                    close()

        self._submit(produce)
        return stop

    async def stream(self, make: Callable[[], Iterator[T]]) -> AsyncGenerator[T, None]:
        """Iterate ``make()`` in one pool thread; each item must arrive within ``timeout_s``.

        When the consumer stops early (client gone, timeout), the producer stops at
        its next item.
        """
        loop = asyncio.get_running_loop()
        await self._take_slot(time.monotonic() + self.timeout_s)
        queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
        stop: threading.Event | None = None

        def put(item: tuple[bool, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone
                if stop is not None:
                    stop.set()

        stop = self._produce(make, put)
        try:
            while True:
                try:
                    ok, item = await asyncio.wait_for(queue.get(), self.timeout_s)
                except TimeoutError:
                    log.warning("stream stalled for %.0f s; abandoned", self.timeout_s)
                    raise TimedOut from None
                if not ok:
                    raise item
                if item is _END:
                    return
                yield item
        finally:
            stop.set()

    def stream_sync(self, make: Callable[[], Iterator[T]]) -> Iterator[T]:
        """``stream`` for callers that are already in a thread of their own (the Gradio chat)."""
        self._take_slot_sync(time.monotonic() + self.timeout_s)
        items: queue.Queue[tuple[bool, Any]] = queue.Queue()
        stop = self._produce(make, items.put)
        try:
            while True:
                try:
                    ok, item = items.get(timeout=self.timeout_s)
                except queue.Empty:
                    log.warning("stream stalled for %.0f s; abandoned", self.timeout_s)
                    raise TimedOut from None
                if not ok:
                    raise item
                if item is _END:
                    return
                yield item
        finally:
            stop.set()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
