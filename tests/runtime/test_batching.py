"""Adaptive batching: concurrent callers share model calls and get exactly their own rows."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from flaskserve import save_model
from flaskserve.admission import load_runtime
from flaskserve.errors import ModelError
from flaskserve.runtime.base import Runtime
from flaskserve.runtime.batching import BatchingRuntime


class CallCounter:
    """The real runtime, with the sizes of the calls it received recorded."""

    def __init__(self, inner: Runtime, hold: threading.Event | None = None) -> None:
        self.inner, self.hold = inner, hold
        self.calls: list[int] = []

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def manifest(self) -> Any:
        return self.inner.manifest

    def predict(self, rows: Any, *, proba: bool = False) -> Any:
        if self.hold is not None:
            self.hold.wait(10)
        self.calls.append(len(rows))
        if (
            isinstance(rows, np.ndarray) and (rows[:, 0] < 0).any()
        ):  # stands for a model that fails on some rows
            raise ModelError("the model failed on a negative first feature")
        return self.inner.predict(rows, proba=proba)


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    x, y = load_iris(return_X_y=True)
    path = tmp_path_factory.mktemp("batching") / "forest"
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
    save_model(model, path, sample=x, compile=False)
    return load_runtime(path, "sklearn")


def _call_concurrently(
    runtime: Runtime, requests: list[np.ndarray], proba: list[bool]
) -> list[Any]:
    results: list[Any] = [None] * len(requests)

    def call(i: int) -> None:
        try:
            results[i] = runtime.predict(requests[i], proba=proba[i])
        except ModelError as e:
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_callers_get_their_own_rows(forest: Runtime) -> None:
    x = load_iris()["data"]
    hold = threading.Event()
    counter = CallCounter(forest, hold)
    batching = BatchingRuntime(counter, max_rows=256)
    requests = [x[i : i + 1 + i % 3] for i in range(0, 120, 5)]
    proba = [i % 2 == 0 for i in range(len(requests))]
    timer = threading.Timer(0.3, hold.set)  # let the requests queue up behind the first call
    timer.start()
    results = _call_concurrently(batching, requests, proba)
    timer.join()
    for rows, wants_proba, result in zip(requests, proba, results, strict=True):
        expected = forest.predict(rows, proba=True)
        np.testing.assert_array_equal(result.predictions, expected.predictions)
        if wants_proba:
            np.testing.assert_array_equal(result.probabilities, expected.probabilities)
        else:
            assert result.probabilities is None
    assert sum(counter.calls) == sum(len(r) for r in requests)
    assert len(counter.calls) < len(requests)  # calls were shared


def test_batches_respect_max_rows(forest: Runtime) -> None:
    x = load_iris()["data"]
    hold = threading.Event()
    counter = CallCounter(forest, hold)
    batching = BatchingRuntime(counter, max_rows=8)
    requests = [x[i : i + 3] for i in range(0, 60, 3)]
    timer = threading.Timer(0.3, hold.set)
    timer.start()
    _call_concurrently(batching, requests, [False] * len(requests))
    timer.join()
    assert max(counter.calls) <= 8


def test_large_requests_bypass_the_queue(forest: Runtime) -> None:
    counter = CallCounter(forest)
    batching = BatchingRuntime(counter, max_rows=8)
    rows = load_iris()["data"][:50]
    np.testing.assert_array_equal(
        batching.predict(rows).predictions, forest.predict(rows).predictions
    )
    assert counter.calls == [50]


def test_one_failing_request_does_not_fail_its_batch(forest: Runtime) -> None:
    x = load_iris()["data"]
    hold = threading.Event()
    batching = BatchingRuntime(CallCounter(forest, hold), max_rows=64)
    good, bad = x[:2], np.array([[-1.0, 1.0, 1.0, 1.0]])
    requests = [good, bad, good, good]
    timer = threading.Timer(0.3, hold.set)
    timer.start()
    results = _call_concurrently(batching, requests, [False] * 4)
    timer.join()
    assert isinstance(results[1], ModelError)
    for i in (0, 2, 3):
        np.testing.assert_array_equal(results[i].predictions, forest.predict(good).predictions)


def test_a_lone_request_does_not_wait(forest: Runtime) -> None:
    counter = CallCounter(forest)
    batching = BatchingRuntime(counter, max_rows=256, max_wait_ms=5_000)
    x = load_iris()["data"]
    started = time.monotonic()
    batching.predict(x[:1])
    batching.predict(x[1:2])
    assert time.monotonic() - started < 4  # waiting for company would have taken 5 s each
    assert counter.calls == [1, 1]


def test_under_concurrency_a_batch_waits_for_company(forest: Runtime) -> None:
    hold = threading.Event()
    counter = CallCounter(forest, hold)
    batching = BatchingRuntime(counter, max_rows=256, max_wait_ms=1_000)
    x = load_iris()["data"]
    # a burst: requests queue behind a held call, so the next batch holds more than one
    timer = threading.Timer(0.2, hold.set)
    timer.start()
    _call_concurrently(batching, [x[i : i + 1] for i in range(6)], [False] * 6)
    timer.join()
    assert max(counter.calls) > 1
    counter.calls.clear()
    # then arrivals 50 ms apart: the batch waits for them and makes one call
    results: list[Any] = []
    threads = []
    for i in range(3):
        thread = threading.Thread(target=lambda i=i: results.append(batching.predict(x[i : i + 1])))
        thread.start()
        threads.append(thread)
        time.sleep(0.05)
    for thread in threads:
        thread.join(10)
    assert len(results) == 3
    assert counter.calls == [3]


def test_a_batch_stops_waiting_once_its_usual_company_is_there(forest: Runtime) -> None:
    hold = threading.Event()
    counter = CallCounter(forest, hold)
    batching = BatchingRuntime(counter, max_rows=256, max_wait_ms=5_000)
    x = load_iris()["data"]
    timer = threading.Timer(0.2, hold.set)  # a held call, then a batch of those behind it
    timer.start()
    _call_concurrently(batching, [x[i : i + 1] for i in range(6)], [False] * 6)
    timer.join()
    usual = max(counter.calls)
    assert usual > 1
    counter.calls.clear()
    # as many clients again: the batch runs once all are there, not after 5 s
    started = time.monotonic()
    results = _call_concurrently(batching, [x[i : i + 1] for i in range(usual)], [False] * usual)
    assert time.monotonic() - started < 4
    assert counter.calls == [usual]
    expected = forest.predict(x[:usual]).predictions
    assert [r.predictions.tolist() for r in results] == [[p] for p in expected]


def test_typed_rows_are_batched_too(census_dir: Any, census: Any) -> None:
    """A frame model's calls are joined column by column and split back exactly."""
    from flaskserve.codecs.records import decode_records

    typed = load_runtime(census_dir, "sklearn")
    rows = [
        {k: (None if v != v else v) for k, v in r.items()}
        for r in census[0].iloc[:40].astype(object).to_dict(orient="records")
    ]
    requests = [
        decode_records(rows[i : i + 1 + i % 3], typed.manifest, 10) for i in range(0, 40, 4)
    ]
    hold = threading.Event()
    counter = CallCounter(typed, hold)
    batching = BatchingRuntime(counter, max_rows=256)
    timer = threading.Timer(0.3, hold.set)
    timer.start()
    results = _call_concurrently(batching, requests, [True] * len(requests))  # type: ignore[arg-type]
    timer.join()
    for request, result in zip(requests, results, strict=True):
        expected = typed.predict(request, proba=True)
        assert expected.probabilities is not None
        np.testing.assert_array_equal(result.predictions, expected.predictions)
        np.testing.assert_allclose(result.probabilities, expected.probabilities, rtol=0, atol=1e-12)
    assert len(counter.calls) < len(requests)
