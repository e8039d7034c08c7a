"""The background store check of a large library (``LibraryIndex``, ``library.poll_interval_s``):
one daemon thread applies the refresh rule off the question path. It holds the index weakly (an
index nobody uses any more is collected and the thread ends) and stops with ``LibraryIndex.close``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class Polled(Protocol):
    """What the poller needs of ``assistant.library.LibraryIndex`` (named here, not imported,
    so that the two modules do not import each other)."""

    settings: Any  # LibrarySettings: poll_interval_s

    @property
    def served(self) -> Any: ...  # the snapshot being served, or None

    def in_background(self, lib: Any) -> bool: ...

    def poll(self) -> Any: ...


def start_poller(index: Polled, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=_poll, args=(weakref.ref(index), stop), name="library-poll", daemon=True)
    thread.start()
    return thread


def _poll(ref: weakref.ReferenceType[Polled], stop: threading.Event) -> None:
    """Every ``poll_interval_s``: the refresh rule, while the index checks in the background."""
    last_error = ""
    while True:
        index = ref()
        if index is None:
            return
        interval = index.settings.poll_interval_s
        del index  # no reference held while sleeping: the index may be collected
        if stop.wait(max(interval, 0.05)):
            return
        index = ref()
        if index is None:
            return
        lib = index.served
        try:
            if lib is not None and index.in_background(lib):
                index.poll()
            last_error = ""
        except Exception as exc:  # never let the thread die: the next round tries again
            if repr(exc) != last_error:  # once per distinct failure, not every round
                logger.exception("后台检查向量库失败")
                last_error = repr(exc)
        del index, lib
