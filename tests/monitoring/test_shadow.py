"""Shadow challengers in one process: routing, the comparison, failures, the admin API."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from flaskserve import save_model
from flaskserve.app import create_app
from flaskserve.errors import ModelNotFound, SettingsError
from flaskserve.monitoring.base import Observation
from flaskserve.monitoring.shadow import ShadowObserver
from flaskserve.runtime.base import Prediction, Runtime
from flaskserve.runtime.registry import ModelRegistry
from flaskserve.runtime.shadows import Routing, ShadowPlan, parse_shadows
from flaskserve.settings import Settings
from flaskserve.training import IRIS_FEATURES

TOKEN = "a" * 24
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def repository(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris 1 (the tutorial forest) and iris 2 (five trees, another seed)."""
    root = tmp_path_factory.mktemp("shadow") / "models"
    shutil.copytree(model_dir, root / "iris" / "1")
    data = load_iris()
    forest = RandomForestClassifier(n_estimators=5, random_state=7).fit(data.data, data.target)
    names = [str(n) for n in data.target_names]
    save_model(
        forest,
        root / "iris" / "2",
        sample=data.data,
        feature_names=IRIS_FEATURES,
        class_names=names,
        name="iris",
        version=2,
    )
    return root


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
    observer = ShadowObserver(registry, None)
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
    observer = ShadowObserver(registry, None)
    champion = registry.refresh().get("iris")
    observer.observe(_observation(champion, load_iris().data[:7], False))
    assert observer.wait_idle(10)
    tally, _ = observer.report_tally(("iris", 2, 0.0))
    assert (tally.failed_rows, tally.failed_batches, tally.rows) == (7, 1, 0)


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
