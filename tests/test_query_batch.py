"""QueryBatcher: concurrent embed_query calls share a model call; the LRU cache in front of it.

A scripted model (hashing vectors) records every batch it encodes; the first call of a
test can be held inside the model so that the others queue up behind it. No timings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from hashing_embeddings import HashingEmbeddings

from assistant.query_batch import QueryBatcher, QueryCache

HASH = HashingEmbeddings(dim=16)


class ScriptedModel(HashingEmbeddings):
    """Hashing vectors; records batches; optionally holds a batch until released; fails on "坏"."""

    def __init__(self) -> None:
        super().__init__(dim=16)
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        self.batches.append(list(texts))
        self.entered.set()
        assert self.release.wait(10), "test never released the model"
        if any("坏" in t for t in texts):
            raise ValueError("模型出错")
        return [self._vector(t) for t in texts]


class RecordingCondition(threading.Condition):
    """A Condition that records the timeouts it is asked to wait for."""

    def __init__(self) -> None:
        super().__init__(threading.Lock())
        self.timeouts: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        return super().wait(timeout)


def _wait_until(check: Callable[[], bool]) -> None:
    """Poll a condition of the batcher's state (not a timing: a bound on a hang)."""
    for _ in range(2000):
        if check():
            return
        time.sleep(0.005)
    raise AssertionError("condition never reached")


def _held_first_call(batcher: QueryBatcher, model: ScriptedModel, pool: ThreadPoolExecutor) -> Future[Any]:
    """Start one call and keep it inside the model, so that later calls queue behind it."""
    model.release.clear()
    first = pool.submit(batcher.embed_query, "第一个问题")
    assert model.entered.wait(10)
    return first


def test_concurrent_calls_share_one_model_call_and_each_gets_its_own_vector() -> None:
    model = ScriptedModel()
    batcher = QueryBatcher(model, max_batch=16)
    texts = [f"问题{i}关于处分" for i in range(6)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = _held_first_call(batcher, model, pool)
        futures = {t: pool.submit(batcher.embed_query, t) for t in texts}
        _wait_until(lambda: len(batcher._queue) == len(texts))
        model.release.set()
        results = {t: f.result(10) for t, f in futures.items()}
    assert first.result(10) == HASH.embed_query("第一个问题")
    assert model.batches[0] == ["第一个问题"]
    assert len(model.batches) == 2 and sorted(model.batches[1]) == sorted(texts)
    for text, vector in results.items():
        assert vector == HASH.embed_query(text)


def test_a_batch_never_exceeds_max_batch() -> None:
    model = ScriptedModel()
    batcher = QueryBatcher(model, max_batch=3)
    texts = [f"问题{i}" for i in range(7)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = _held_first_call(batcher, model, pool)
        futures = [pool.submit(batcher.embed_query, t) for t in texts]
        _wait_until(lambda: len(batcher._queue) == len(texts))
        model.release.set()
        assert [f.result(10) for f in futures] == [HASH.embed_query(t) for t in texts]
        first.result(10)
    assert [len(b) for b in model.batches] == [1, 3, 3, 1]


def test_the_same_question_twice_in_a_batch_is_encoded_once() -> None:
    model = ScriptedModel()
    batcher = QueryBatcher(model)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = _held_first_call(batcher, model, pool)
        futures = [pool.submit(batcher.embed_query, "重复的问题") for _ in range(3)]
        _wait_until(lambda: len(batcher._queue) == 3)
        model.release.set()
        vectors = [f.result(10) for f in futures]
        first.result(10)
    assert model.batches[1] == ["重复的问题"]
    assert vectors == [HASH.embed_query("重复的问题")] * 3
    vectors[0][0] = 99.0  # one caller changing its list does not change another's
    assert vectors[1] == HASH.embed_query("重复的问题")


def test_a_lone_call_does_not_wait_when_the_setting_is_zero() -> None:
    batcher = QueryBatcher(ScriptedModel(), wait_ms=0)
    cond = RecordingCondition()
    batcher._cond = cond
    assert batcher.embed_query("单独的问题") == HASH.embed_query("单独的问题")
    assert cond.timeouts == []


def test_a_lone_call_waits_at_most_the_setting() -> None:
    batcher = QueryBatcher(ScriptedModel(), wait_ms=20)
    cond = RecordingCondition()
    batcher._cond = cond
    assert batcher.embed_query("单独的问题") == HASH.embed_query("单独的问题")
    assert cond.timeouts, "the lone leader should have waited for company"
    assert all(t is not None and 0 < t <= 0.020 for t in cond.timeouts)


def test_a_failing_batch_reaches_every_caller_and_later_calls_still_work() -> None:
    model = ScriptedModel()
    batcher = QueryBatcher(model)
    texts = ["好问题一", "坏问题", "好问题二"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = _held_first_call(batcher, model, pool)
        futures = [pool.submit(batcher.embed_query, t) for t in texts]
        _wait_until(lambda: len(batcher._queue) == len(texts))
        model.release.set()
        assert first.result(10) == HASH.embed_query("第一个问题")
        for f in futures:
            with pytest.raises(ValueError, match="模型出错"):
                f.result(10)
    assert batcher.embed_query("好问题一") == HASH.embed_query("好问题一")
    with pytest.raises(ValueError):
        batcher.embed_query("又一个坏问题")
    assert batcher.embed_query("之后的问题") == HASH.embed_query("之后的问题")
    assert not batcher._leading and not batcher._queue


def test_a_model_without_embed_queries_is_called_per_text() -> None:
    batcher = QueryBatcher(HashingEmbeddings(dim=16))
    assert batcher.embed_query("问题") == HASH.embed_query("问题")
    assert batcher.embed_documents(["文件一", "文件二"]) == HASH.embed_documents(["文件一", "文件二"])
    assert batcher.model_name == HASH.model_name
    assert batcher.dim == 16  # other attributes of the wrapped model stay reachable


def test_cache_hit_miss_and_eviction() -> None:
    model = ScriptedModel()
    batcher = QueryBatcher(model, cache_size=2)
    for text in ("甲", "乙", "甲"):  # 甲 is a hit and becomes the most recent
        assert batcher.embed_query(text) == HASH.embed_query(text)
    assert model.batches == [["甲"], ["乙"]]
    assert (batcher.cache.hits, batcher.cache.misses) == (1, 2)
    batcher.embed_query("丙")  # evicts 乙, the least recently used
    batcher.embed_query("甲")
    assert model.batches == [["甲"], ["乙"], ["丙"]]
    batcher.embed_query("乙")
    assert model.batches[-1] == ["乙"] and len(batcher.cache) == 2
    cached = batcher.embed_query("乙")
    cached[0] = 42.0  # a caller changing its vector does not change the cache
    assert batcher.embed_query("乙") == HASH.embed_query("乙")


def test_cache_size_zero_keeps_nothing() -> None:
    model = ScriptedModel()
    batcher = QueryBatcher(model, cache_size=0)
    batcher.embed_query("甲")
    batcher.embed_query("甲")
    assert model.batches == [["甲"], ["甲"]] and len(batcher.cache) == 0


def test_cache_key_holds_the_model_name() -> None:
    cache = QueryCache(4)
    cache.put(("model-a", "问题"), [1.0, 0.0])
    assert cache.get(("model-b", "问题")) is None
    assert cache.get(("model-a", "问题")) == [1.0, 0.0]
