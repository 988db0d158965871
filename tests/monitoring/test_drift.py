"""Input drift: baselines saved with the model, served rows counted into their bins, PSI."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from assertions import json_body
from flaskserve.app import create_app
from flaskserve.artifact import MANIFEST_NAME, Feature, read_manifest
from flaskserve.monitoring import drift as drift_module
from flaskserve.monitoring.drift import DriftMonitor
from flaskserve.monitoring.drift_baseline import (
    EPSILON,
    Bins,
    compute_baselines,
    stability_index,
    status_of,
)
from flaskserve.monitoring.drift_counts import SLOTS, CountStore
from flaskserve.schema import Table
from flaskserve.settings import Settings
from flaskserve.training import load_iris_dataset

KEY = "k" * 24
NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SHIFT = np.array([0, 0, 3.0, 0])  # petal_length 3 cm longer


def _client(model_dir: Path, **settings: Any) -> FlaskClient:
    """A fresh app, so its monitor counts only this test's rows."""
    return create_app(Settings(model_dir=model_dir, poll_seconds=0, **settings)).test_client()


def _drift(client: FlaskClient, **headers: str) -> dict[str, Any]:
    response = client.get("/model/iris/drift", headers=headers)
    assert response.status_code == 200, response.data[:300]
    body: dict[str, Any] = json_body(response)
    return body


def _training_rows() -> np.ndarray:
    """The rows the iris artifact was saved with (the tutorial's 70/30 split)."""
    from sklearn.model_selection import train_test_split

    from flaskserve.training import RANDOM_SEED, TEST_SIZE

    dataset = load_iris_dataset()
    x_train, _ = train_test_split(dataset.features, test_size=TEST_SIZE, random_state=RANDOM_SEED)
    return np.asarray(x_train, dtype=np.float64)


def _send(client: FlaskClient, rows: np.ndarray, batch: int = 50) -> None:
    for start in range(0, len(rows), batch):
        body = [dict(zip(NAMES, row, strict=True)) for row in rows[start : start + batch].tolist()]
        assert client.post("/predict/iris", json=body).status_code == 200


# --- baselines, at save time


def test_save_model_records_a_decile_baseline_per_column(model_dir: Path) -> None:
    baselines = read_manifest(model_dir).baselines
    assert list(baselines) == list(NAMES)
    for baseline in baselines.values():
        assert baseline["kind"] == "number" and baseline["rows"] == 105
        assert baseline["edges"] == sorted(set(baseline["edges"])) and len(baseline["edges"]) <= 9
        assert len(baseline["shares"]) == len(baseline["edges"]) + 1
        assert math.isclose(sum(baseline["shares"]) + baseline["missing"], 1, abs_tol=1e-5)
        assert baseline["missing"] == 0


def test_the_training_rows_have_no_drift_from_their_own_baseline(model_dir: Path) -> None:
    manifest = read_manifest(model_dir)
    rows = _training_rows()
    for j, name in enumerate(NAMES):
        bins = Bins.from_baseline(name, manifest.baselines[name])
        assert stability_index(bins.expected, bins.count(rows[:, j])) == pytest.approx(0, abs=1e-4)


def test_text_and_boolean_columns_pool_rare_categories_and_count_missing() -> None:
    features = (Feature("city", "object", nullable=True), Feature("member", "bool"))
    cities = ["Oslo"] * 60 + ["Rome"] * 39 + ["Lima"] * 1 + [math.nan] * 100  # Lima: 0.5%
    members = np.array([True] * 50 + [False] * 150)
    table = Table(features, (np.array(cities, dtype=object), members))
    city, member = compute_baselines(features, table).values()
    assert city == {
        "kind": "category",
        "rows": 200,
        "categories": ["Oslo", "Rome"],
        "shares": [0.3, 0.195],
        "other": 0.005,
        "missing": 0.5,
    }
    assert member["categories"] == ["false", "true"] and member["shares"] == [0.75, 0.25]
    bins = Bins.from_baseline("city", city)
    served = np.array(["Oslo", "Paris", None, math.nan, "Rome"], dtype=object)
    assert bins.labels == ("Oslo", "Rome", "other", "missing")
    assert bins.count(served).tolist() == [1, 1, 1, 2]


def test_numbers_with_missing_cells_and_ties() -> None:
    column = np.array([1.0] * 50 + [2.0] * 30 + [math.nan] * 20)
    (baseline,) = compute_baselines((Feature("x", nullable=True),), column[:, None]).values()
    assert baseline["edges"] == [1.0, 2.0]  # nine deciles, two distinct values
    assert baseline["shares"] == [0.0, 0.5, 0.3] and baseline["missing"] == 0.2
    bins = Bins.from_baseline("x", baseline)
    assert bins.labels == ("< 1", "1 to 2", "≥ 2", "missing")
    assert bins.count(np.array([0.5, 1.0, 1.5, 2.0, 9.0, math.nan])).tolist() == [1, 2, 2, 1]


# --- the index and its statuses


def test_stability_index_is_the_formula_with_epsilon_for_empty_bins() -> None:
    expected = np.array([0.5, 0.5, 0.0])
    counts = np.array([30, 70, 0])
    a, e = np.array([0.3, 0.7, EPSILON]), np.array([0.5, 0.5, EPSILON])
    want = float(np.sum((a - e) * np.log(a / e)))
    assert stability_index(expected, counts) == pytest.approx(want)
    assert stability_index(expected, np.array([0, 0, 10])) == pytest.approx(
        2 * (EPSILON - 0.5) * math.log(EPSILON / 0.5) + (1 - EPSILON) * math.log(1 / EPSILON)
    )
    assert stability_index(expected, np.zeros(3, dtype=np.int64)) is None


@pytest.mark.parametrize(
    ("psi", "status"),
    [
        *[(None, "no data"), (0.0, "stable"), (0.0999, "stable"), (0.1, "shift")],
        *[(0.25, "shift"), (0.2501, "drift"), (5.0, "drift")],
    ],
)
def test_status_thresholds(psi: float | None, status: str) -> None:
    assert status_of(psi) == status


# --- served rows, through the app


def test_training_rows_are_stable_and_a_shifted_column_drifts(model_dir: Path) -> None:
    client = _client(model_dir)
    rng = np.random.default_rng(0)
    training = _training_rows()
    drawn = training[rng.integers(0, len(training), 1000)]
    _send(client, drawn)
    report = _drift(client)
    assert report["rows"] == {"since_start": 1000, "window": 1000}
    assert report["status"] == "stable" and report["workers"] == 1 and report["dropped"] == 0
    for feature in report["features"]:
        assert feature["since_start"]["psi"] < 0.1, feature
        assert sum(b["since_start"] for b in feature["bins"]) == pytest.approx(1, abs=1e-3)
    shifted = training[rng.integers(0, len(training), 1000)] + SHIFT
    _send(client, shifted)
    report = _drift(client)
    assert report["rows"]["since_start"] == 2000 and report["status"] == "drift"
    statuses = {f["name"]: f["window"]["status"] for f in report["features"]}
    assert statuses == {**dict.fromkeys(NAMES, "stable"), "petal_length": "drift"}


def _gauges(client: FlaskClient) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    return {
        line.split('feature="')[1].split('"')[0]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("flaskserve_feature_psi{") and 'model="iris",version="1"' in line
    }


def test_too_few_rows_get_an_index_but_no_status_and_no_gauge(model_dir: Path) -> None:
    client = _client(model_dir)
    _send(client, _training_rows()[:40] + SHIFT)
    report = _drift(client)
    assert report["status"] == "too few rows"
    for feature in report["features"]:
        assert feature["min_rows"] == 20 * (len(feature["bins"]) - 1) > 40
        assert feature["since_start"]["status"] == "too few rows"
        assert feature["since_start"]["psi"] is not None
    assert _gauges(client) == {}  # no alert from a noisy index

    _send(client, np.tile(_training_rows(), (2, 1)) + SHIFT)  # 250 rows: enough
    assert _drift(client)["status"] == "drift"
    gauges = _gauges(client)
    assert set(gauges) == set(NAMES) and gauges["petal_length"] > 0.25


def test_status_needs_the_rows_its_bins_ask_for() -> None:
    assert status_of(0.01, rows=199, needed=200) == "too few rows"
    assert status_of(0.01, rows=200, needed=200) == "stable"
    assert status_of(None, rows=0, needed=200) == "no data"


def test_a_manifest_without_baselines_says_so(model_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "iris"
    shutil.copytree(model_dir, old)
    manifest = json.loads((old / MANIFEST_NAME).read_text())
    del manifest["baselines"]
    (old / MANIFEST_NAME).write_text(json.dumps(manifest))
    client = _client(old)
    _send(client, _training_rows()[:10])
    report = _drift(client)
    assert report["baseline"] is False and report["status"] == "no baseline"
    assert "no baseline" in report["reason"]
    assert client.get("/metrics").status_code == 200


def test_drift_off_builds_no_monitor(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASKSERVE_DRIFT", "0")
    app = create_app(Settings.from_env(model_dir=model_dir, poll_seconds=0))
    state = app.extensions["flaskserve"]
    assert not any(isinstance(o, DriftMonitor) for o in state.observers)
    response = app.test_client().get("/model/iris/drift")
    assert response.status_code == 404 and "FLASKSERVE_DRIFT=0" in json_body(response)["error"]


def test_the_endpoint_needs_an_api_key_and_takes_a_version(model_dir: Path) -> None:
    client = _client(model_dir, api_keys=KEY)
    assert client.get("/model/iris/drift").status_code == 401
    assert _drift(client, **{"X-API-Key": KEY})["version"] == 1
    response = client.get("/model/iris/drift?version=7", headers={"X-API-Key": KEY})
    assert response.status_code == 404


def test_a_full_queue_drops_and_counts(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(model_dir)
    monkeypatch.setattr(drift_module, "QUEUE_LIMIT", 0)
    _send(client, _training_rows()[:10], batch=1)
    report = _drift(client)
    assert report["dropped"] == 10 and report["rows"]["since_start"] == 0


# --- counts over time and over processes


def test_the_window_keeps_only_recent_slots(tmp_path: Path) -> None:
    store = CountStore(slot_seconds=1.0, directory=tmp_path)
    now = 1000.0
    counts = {"x": np.array([1, 2])}
    store.add(("m", 1), store.slot_of(now - SLOTS - 5), 3, counts)
    store.add(("m", 1), store.slot_of(now), 3, counts)
    summary = store.summary(("m", 1), now)
    assert summary.total.rows == 6 and summary.window.rows == 3
    assert summary.total.counts["x"].tolist() == [2, 4]
    store.write()  # this process's own file is not counted twice
    assert store.summary(("m", 1), now).total.rows == 6


def test_observe_only_queues(model_dir: Path) -> None:
    """The request thread's share: an append and a flag, a few microseconds at most."""
    client = _client(model_dir)
    state = client.application.extensions["flaskserve"]
    (monitor,) = [o for o in state.observers if isinstance(o, DriftMonitor)]
    observation = _observation(client)
    started = time.perf_counter()
    for _ in range(2000):
        monitor.observe(observation)
    assert (time.perf_counter() - started) / 2000 < 20e-6


def test_a_long_queue_is_counted_whole(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows queue in one list a version and slot, each binned at once."""
    client = _client(model_dir)
    state = client.application.extensions["flaskserve"]
    (monitor,) = [o for o in state.observers if isinstance(o, DriftMonitor)]
    monkeypatch.setattr(monitor, "_start", lambda: None)  # no thread: the test counts
    observation = _observation(client)
    for _ in range(261):
        monitor.observe(observation)
    monitor.count_queued()
    assert _drift(client)["rows"]["since_start"] == 5 * 261


def test_each_answer_counts_in_the_window_slot_of_its_time(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(model_dir)
    state = client.application.extensions["flaskserve"]
    (monitor,) = [o for o in state.observers if isinstance(o, DriftMonitor)]
    monkeypatch.setattr(monitor, "_start", lambda: None)  # no thread: the test counts
    recent = _observation(client)
    long_ago = replace(recent, time=recent.time - 2 * monitor.window_seconds)
    for seen in (recent, long_ago, recent):
        monitor.observe(seen)
    monitor.count_queued()
    assert _drift(client)["rows"] == {"since_start": 15, "window": 10}


def _shared_rows(state_dir: Path) -> int:
    """The rows this process's counts file holds for the other workers."""
    (path,) = (state_dir / "drift").glob("*.json")
    (entry,) = json.loads(path.read_text())["models"]
    rows: int = entry["total"]["rows"]
    return rows


def test_counts_are_shared_at_most_every_share_seconds_and_when_traffic_stops(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing the counts file on every count cost more than counting; a stop writes the rest."""
    client = _client(model_dir, state_dir=tmp_path)
    state = client.application.extensions["flaskserve"]
    (monitor,) = [o for o in state.observers if isinstance(o, DriftMonitor)]
    monkeypatch.setattr(monitor, "_start", lambda: None)  # no thread: the test counts
    observation = _observation(client)
    monitor.observe(observation)
    monitor.count_queued()
    assert _shared_rows(tmp_path) == 5  # the first count is shared at once
    monitor.observe(observation)
    monitor.count_queued()
    assert _shared_rows(tmp_path) == 5  # within SHARE_SECONDS: held
    assert _drift(client)["rows"]["since_start"] == 10  # its own report counts everything
    monitor.observe(observation)
    monitor._close()  # a stopping worker (its exit hook)
    assert _shared_rows(tmp_path) == 15


def test_the_counting_thread_shares_the_last_counts_once_traffic_stops(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drift_module, "COUNT_SECONDS", 0.01)
    monkeypatch.setattr(drift_module, "SHARE_SECONDS", 0.3)
    client = _client(model_dir, state_dir=tmp_path)
    state = client.application.extensions["flaskserve"]
    (monitor,) = [o for o in state.observers if isinstance(o, DriftMonitor)]
    observation = _observation(client)
    monitor.observe(observation)
    deadline = time.monotonic() + 5
    while not list((tmp_path / "drift").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    monitor.observe(observation)  # counted within SHARE_SECONDS of the first: held, then shared
    while _shared_rows(tmp_path) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _shared_rows(tmp_path) == 10


def _observation(client: FlaskClient) -> Any:
    from flaskserve.monitoring import Observation
    from flaskserve.runtime.base import Prediction

    state = client.application.extensions["flaskserve"]
    model = state.registry.snapshot.get("iris")
    rows = _training_rows()[:5]
    return Observation(model, rows, Prediction(np.zeros(5)), "id", "/predict", time.time())


def test_the_model_card_shows_drift_from_the_endpoint(model_dir: Path) -> None:
    client = _client(model_dir)
    page = client.get("/ui/iris").get_data(as_text=True)
    assert 'id="drift" data-url="/model/iris/drift"' in page and "Input drift" in page
    with client.get("/ui/static/ui.js") as response:  # a file response: closed after use
        script = response.get_data(as_text=True)
    assert 'getElementById("drift")' in script and "section.dataset.url" in script
