"""Shadow challengers in one process: routing, the comparison, failures, the admin API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import iris_with_challenger
from flask.testing import FlaskClient
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestRegressor

from flaskserve import save_model
from flaskserve.app import create_app
from flaskserve.errors import ModelNotFound, SettingsError
from flaskserve.metrics import Metrics
from flaskserve.monitoring import shadow
from flaskserve.monitoring.base import Observation
from flaskserve.monitoring.shadow import ShadowObserver
from flaskserve.runtime.base import Prediction, Runtime
from flaskserve.runtime.compiled import CompiledRuntime
from flaskserve.runtime.registry import ModelRegistry
from flaskserve.runtime.shadows import Routing, ShadowPlan, parse_shadows
from flaskserve.settings import Settings

TOKEN = "a" * 24
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def repository(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris 1 and 2 (:func:`conftest.iris_with_challenger`), and two regressors as price."""
    root = iris_with_challenger(model_dir, tmp_path_factory.mktemp("shadow") / "models")
    x, y = _regression_data()
    for version, trees in ((1, 20), (2, 5)):
        regressor = RandomForestRegressor(n_estimators=trees, random_state=version).fit(x, y)
        save_model(
            regressor, root / "price" / str(version), sample=x, name="price", version=version
        )
    return root


def _regression_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3))
    return x, x @ np.array([2.0, -1.0, 0.5]) + rng.normal(scale=0.1, size=200)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iris=2", {"iris": ShadowPlan(2, 1.0)}),
        ("iris=2@0.25, wine=3", {"iris": ShadowPlan(2, 0.25), "wine": ShadowPlan(3, 1.0)}),
        (None, {}),
    ],
    ids=["plain", "two", "none"],
)
def test_parse_shadows(text: str | None, expected: dict[str, ShadowPlan]) -> None:
    assert parse_shadows(text) == expected


@pytest.mark.parametrize(
    "text", ["iris", "iris=x", "iris=2@0", "iris=2@1.5", "iris=0", "iris=2,iris=3"]
)
def test_parse_shadows_refuses(text: str) -> None:
    with pytest.raises(SettingsError, match=r"^shadow: "):
        parse_shadows(text)


def test_a_shadow_version_never_answers(repository: Path) -> None:
    registry = ModelRegistry(repository)
    assert registry.refresh().get("iris").version == 2  # the highest, without a shadow
    registry.routing.set_initial(Routing({"iris": ShadowPlan(2)}))
    snapshot = registry.refresh()
    assert snapshot.get("iris").version == 1
    with pytest.raises(ModelNotFound, match="version 2 is a shadow challenger"):
        snapshot.get("iris", "2")
    found = snapshot.challenger("iris")
    assert found is not None and found[0].version == 2
    promoted = registry.change_routing(lambda r: r.with_promoted("iris", 2))
    assert promoted.get("iris").version == 2 and promoted.challenger("iris") is None


def _observation(model: Any, rows: np.ndarray, proba: bool) -> Observation:
    prediction = model.runtime.predict(rows, proba=proba)
    return Observation(model, rows, prediction, "r", "/predict/<name>", 0.0)


def test_the_comparison_equals_both_models_on_the_rows(repository: Path) -> None:
    registry = ModelRegistry(repository)
    registry.routing.set_initial(Routing({"iris": ShadowPlan(2)}))
    snapshot = registry.refresh()
    observer = ShadowObserver(registry, None, Metrics())
    rows = load_iris().data[::3]
    champion, challenger = snapshot.get("iris"), snapshot.models["iris"][2]
    for start in range(0, len(rows), 10):  # some ask for probabilities, most do not
        observer.observe(_observation(champion, rows[start : start + 10], start == 0))
    assert observer.wait_idle(10)
    tally, workers = observer.report_tally(("iris", 2, 0.0))
    ours = champion.runtime.predict(rows, proba=True)
    theirs = challenger.runtime.predict(rows, proba=True)
    assert (workers, tally.rows, tally.requests) == (1, len(rows), 5)
    assert tally.agree == int(np.sum(ours.predictions == theirs.predictions))
    assert sum(sum(row.values()) for row in tally.confusion.values()) == len(rows)
    assert ours.probabilities is not None and theirs.probabilities is not None
    diff = np.max(np.abs(ours.probabilities - theirs.probabilities), axis=1)
    assert tally.proba_diff_max == pytest.approx(diff.max())
    assert tally.proba_diff_sum / tally.proba_rows == pytest.approx(diff.mean())
    assert tally.failed_rows == 0 and tally.seconds > 0


def _counted(metrics: Metrics, model: str) -> dict[str, float]:
    text = metrics.render()[0].decode()
    return {
        line.split('outcome="')[1].split('"')[0]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("flaskserve_shadow_rows_total{") and f'model="{model}"' in line
    }


def test_a_regressor_is_compared_by_value_and_counted_in_prometheus(repository: Path) -> None:
    registry = ModelRegistry(repository)
    registry.routing.set_initial(Routing({"price": ShadowPlan(2)}))
    snapshot = registry.refresh()
    metrics = Metrics()
    observer = ShadowObserver(registry, None, metrics)
    rows = _regression_data()[0][:60]
    champion, challenger = snapshot.get("price"), snapshot.models["price"][2]
    for start in range(0, len(rows), 20):
        observer.observe(_observation(champion, rows[start : start + 20], False))
    assert observer.wait_idle(10)
    tally, _ = observer.report_tally(("price", 2, 0.0))
    ours = champion.runtime.predict(rows).predictions
    diff = np.abs(ours - challenger.runtime.predict(rows).predictions)
    assert tally.value_rows == tally.rows == len(rows) and tally.confusion == {}
    assert tally.agree == int(np.sum(diff <= 1e-6 * np.maximum(1, np.abs(ours)))) < len(rows)
    assert tally.value_diff_max == pytest.approx(diff.max())
    assert tally.value_diff_sum / tally.value_rows == pytest.approx(diff.mean())
    outcomes = {"agree": tally.agree, "disagree": len(rows) - tally.agree}
    assert _counted(metrics, "price") == {k: v for k, v in outcomes.items() if v}


class _Failing:
    """A runtime whose every prediction raises, as a broken challenger's would."""

    def __init__(self, inner: Runtime) -> None:
        self.kind, self.manifest = inner.kind, inner.manifest

    def predict(self, rows: Any, *, proba: bool = False) -> Prediction:
        raise RuntimeError("challenger broke")


def test_a_failing_challenger_is_counted(repository: Path) -> None:
    def wrap(runtime: Runtime) -> Runtime:
        return _Failing(runtime) if runtime.manifest.version == 2 else runtime

    registry = ModelRegistry(repository, wrap=wrap)
    registry.routing.set_initial(Routing({"iris": ShadowPlan(2)}))
    metrics = Metrics()
    observer = ShadowObserver(registry, None, metrics)
    champion = registry.refresh().get("iris")
    observer.observe(_observation(champion, load_iris().data[:7], False))
    assert observer.wait_idle(10)
    tally, _ = observer.report_tally(("iris", 2, 0.0))
    assert (tally.failed_rows, tally.failed_batches, tally.rows) == (7, 1, 0)
    assert _counted(metrics, "iris") == {"failed": 7}


def test_a_full_queue_drops_requests_and_counts_them(
    repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shadow, "QUEUE_REQUESTS", 3)
    monkeypatch.setattr(shadow, "COLLECT_SECONDS", 0.5)  # the queue fills before it is taken
    registry = ModelRegistry(repository)
    registry.routing.set_initial(Routing({"iris": ShadowPlan(2)}))
    metrics = Metrics()
    observer = ShadowObserver(registry, None, metrics)
    champion = registry.refresh().get("iris")
    rows = load_iris().data[:4]
    for _ in range(5):
        observer.observe(_observation(champion, rows, False))
    assert observer.wait_idle(10)
    tally, _ = observer.report_tally(("iris", 2, 0.0))
    assert (tally.requests, tally.rows, tally.dropped) == (3, 12, 2)
    text = metrics.render()[0].decode()
    assert 'flaskserve_shadow_dropped_total{challenger_version="2",model="iris"} 2.0' in text


@pytest.fixture()
def client(repository: Path, tmp_path: Path) -> FlaskClient:
    settings = Settings(
        model_dir=repository, poll_seconds=0, admin_token=TOKEN, state_dir=tmp_path / "state"
    )
    return create_app(settings).test_client()


def test_the_admin_api_starts_reports_and_promotes(client: FlaskClient) -> None:
    assert (
        client.post("/predict/iris", json=[[5.9, 3.0, 5.1, 1.8]]).headers["X-Model-Version"] == "2"
    )
    started = client.post("/v2/repository/models/iris/shadow", json={"version": 2}, headers=ADMIN)
    assert started.json == {"name": "iris", "version": "2", "fraction": 1.0, "state": "SHADOW"}
    rows = load_iris().data[::5].tolist()
    answer = client.post("/predict/iris", json=rows)
    assert answer.headers["X-Model-Version"] == "1"
    refused = client.post("/predict/iris/2", json=rows)  # no such route: the v2 one instead
    named = client.post(
        "/v2/models/iris/versions/2/infer",
        json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": rows[0]}]},
    )
    assert named.status_code == 404 and "shadow challenger" in named.json["error"]  # type: ignore[index]
    assert refused.status_code in (404, 405)
    observer = next(
        o
        for o in client.application.extensions["flaskserve"].observers
        if isinstance(o, ShadowObserver)
    )
    assert observer.wait_idle(10)
    report = client.get("/model/iris/shadow").json
    assert report is not None
    assert (report["champion_version"], report["challenger_version"], report["rows"]) == (1, 2, 30)
    assert report["workers"] == 1 and report["probability_difference"]["rows"] == 30
    promoted = client.post("/v2/repository/models/iris/shadow/promote", headers=ADMIN)
    assert promoted.json == {"name": "iris", "version": "2", "state": "READY"}
    assert client.post("/predict/iris", json=rows).headers["X-Model-Version"] == "2"
    assert client.get("/model/iris/shadow").json == {
        "model": "iris",
        "champion_version": 2,
        "challenger_version": None,
    }


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"version": "x"}, 400, "positive integer"),
        ({"version": 9}, 404, "no version 9"),
        ({"version": 2, "fraction": 0}, 400, "fraction"),
        ({"version": 2, "x": 1}, 400, "unknown option"),
        ([], 400, "JSON object"),
    ],
    ids=["champion", "missing", "fraction", "unknown", "not-object"],
)
def test_the_admin_api_refuses(
    client: FlaskClient, body: object, status: int, message: str
) -> None:
    response = client.post("/v2/repository/models/iris/shadow", json=body, headers=ADMIN)
    assert response.status_code == status
    assert message in response.json["error"]  # type: ignore[index]
    stop = client.post("/v2/repository/models/iris/shadow/stop", headers=ADMIN)
    assert stop.status_code == 404 and "no shadow challenger" in stop.json["error"]  # type: ignore[index]


def test_the_model_card_shows_the_challenger(client: FlaskClient) -> None:
    client.post("/v2/repository/models/iris/shadow", json={"version": 2}, headers=ADMIN)
    page = client.get("/ui/iris").get_data(as_text=True)
    assert 'id="shadow" data-url="/model/iris/shadow"' in page


def _shadow_observer(client: FlaskClient) -> ShadowObserver:
    observers = client.application.extensions["flaskserve"].observers
    return next(o for o in observers if isinstance(o, ShadowObserver))


def test_a_fraction_samples_requests_not_rows(client: FlaskClient) -> None:
    started = client.post(
        "/v2/repository/models/iris/shadow", json={"version": 2, "fraction": 0.25}, headers=ADMIN
    )
    assert started.json["fraction"] == 0.25  # type: ignore[index]
    row = [5.9, 3.0, 5.1, 1.8]
    for _ in range(400):
        assert client.post("/predict/iris", json=[row, row]).headers["X-Model-Version"] == "1"
    assert _shadow_observer(client).wait_idle(10)
    report = client.get("/model/iris/shadow").json
    assert report is not None and report["fraction"] == 0.25
    # 400 draws at 0.25: 100 expected, outside 55..145 once in about 10^8 runs
    assert 55 <= report["requests"] <= 145 and report["rows"] == 2 * report["requests"]


def test_a_regressor_challenger_reports_value_differences(client: FlaskClient) -> None:
    client.post("/v2/repository/models/price/shadow", json={"version": 2}, headers=ADMIN)
    rows = _regression_data()[0][:30]
    answer = client.post("/predict/price", json=rows.tolist())
    assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "1"
    assert _shadow_observer(client).wait_idle(10)
    report = client.get("/model/price/shadow").json
    assert report is not None and report["rows"] == 30 and report["confusion"] is None
    assert report["probability_difference"] is None and report["value_difference"]["rows"] == 30
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'flaskserve_shadow_rows_total{challenger_version="2",model="price",outcome=' in metrics


def test_the_client_gets_only_what_it_asked_and_the_report_every_probability(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each answer is one run of the champion: the client gets what it asked for, and
    the probabilities it did not ask for, which the same ONNX Runtime run gave, go to the
    shadow as scores; the champion is never run again for the comparison."""
    client.post("/v2/repository/models/iris/shadow", json={"version": 2}, headers=ADMIN)
    runs: list[tuple[int, str, int]] = []
    predict, with_scores = CompiledRuntime.predict, CompiledRuntime.predict_with_scores

    def counted(self: CompiledRuntime, rows: Any, *, proba: bool = False) -> Prediction:
        runs.append((self.manifest.version, "proba" if proba else "label", len(rows)))
        return predict(self, rows, proba=proba)

    def counted_with_scores(self: CompiledRuntime, rows: Any) -> Prediction:
        runs.append((self.manifest.version, "scores", len(rows)))
        return with_scores(self, rows)

    monkeypatch.setattr(CompiledRuntime, "predict", counted)
    monkeypatch.setattr(CompiledRuntime, "predict_with_scores", counted_with_scores)
    row = [5.9, 3.0, 5.1, 1.8]
    answer = client.post("/predict", json=[row])
    assert answer.get_data() == b'{"result":[2]}\n'
    with_proba = client.post("/predict?proba=true", json=[row]).json
    assert with_proba is not None and len(with_proba["probabilities"][0]) == 3
    assert _shadow_observer(client).wait_idle(10)
    # one run per answer; then one bulk run of the challenger, none of the champion
    assert sorted(runs) == [(1, "proba", 1), (1, "scores", 1), (2, "proba", 2)]
    report = client.get("/model/iris/shadow").json
    assert report is not None and report["probability_difference"]["rows"] == 2
    snapshot = client.application.extensions["flaskserve"].registry.snapshot
    ours = predict(snapshot.models["iris"][1].runtime, np.array([row]), proba=True)
    theirs = predict(snapshot.models["iris"][2].runtime, np.array([row]), proba=True)
    assert ours.probabilities is not None and theirs.probabilities is not None
    expected = float(np.max(np.abs(ours.probabilities - theirs.probabilities)))
    assert report["probability_difference"]["max"] == pytest.approx(expected, abs=1e-6)
