"""Shadow challengers on a real two-worker server: clients only ever see the champion, the
report adds up every worker's comparison, and promotion reaches every worker."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression

from flaskserve import load_model, save_model
from flaskserve.training import IRIS_FEATURES
from liveserver import LiveServer, on_both_servers

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
TOKEN = "t" * 32
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def _save(estimator: Any, path: Path, name: str, version: int) -> None:
    data = load_iris()
    estimator.fit(data.data, data.target)
    names = [str(n) for n in data.target_names] if hasattr(estimator, "classes_") else None
    save_model(
        estimator,
        path,
        sample=data.data,
        feature_names=IRIS_FEATURES,
        class_names=names,
        name=name,
        version=version,
        compile=False,  # the parity gate costs seconds; these versions need no compiled model
    )


@pytest.fixture()
def repository(model_dir: Path, tmp_path: Path) -> Path:
    """iris 1 (the tutorial), iris 2 (five trees, seed 7); broken 1 (the tutorial) and
    broken 2, a regressor: asked for a classifier's probabilities, its predictions raise."""
    root = tmp_path / "models"
    shutil.copytree(model_dir, root / "iris" / "1")
    _save(RandomForestClassifier(n_estimators=5, random_state=7), root / "iris" / "2", "iris", 2)
    shutil.copytree(model_dir, root / "broken" / "1")  # served under its directory's name
    _save(LinearRegression(), root / "broken" / "2", "broken", 2)
    return root


def _until(condition: Callable[[], bool], seconds: float = 45.0) -> bool:
    # a worker's monitor process starts with its first answer: on a busy machine, importing
    # and loading both versions took most of 15 s in one CI run
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _send(url: str, name: str, batches: list[np.ndarray]) -> list[requests.Response]:
    # a fresh connection each: the two workers both answer some
    return [
        requests.post(f"{url}/predict/{name}", json=rows.tolist(), timeout=10) for rows in batches
    ]


@on_both_servers()
def test_champion_answers_challenger_compares_promotion_switches(
    repository: Path, start: Callable[..., LiveServer]
) -> None:
    args = [str(BIN / "flaskserve"), "serve", str(repository), "--port", "{port}"]
    args += ["--workers", "2", "--shadow", "iris=2", "--shadow", "broken=2"]
    server = start(args, env={"FLASKSERVE_ADMIN_TOKEN": TOKEN, "FLASKSERVE_POLL_SECONDS": "0.3"})
    rows = load_iris().data
    batches = [rows[i : i + 5] for i in range(0, len(rows), 5)]  # 30 requests, 150 rows
    one = load_model(repository / "iris" / "1").estimator
    two = load_model(repository / "iris" / "2").estimator

    for response, batch in zip(_send(server.url, "iris", batches), batches, strict=True):
        assert response.status_code == 200
        assert response.headers["X-Model-Version"] == "1"
        assert response.json()["result"] == one.predict(batch).tolist()
    named = requests.post(f"{server.url}/v2/models/iris/versions/2/infer", json={}, timeout=10)
    assert named.status_code == 404 and "shadow challenger" in named.json()["error"]

    def report() -> dict[str, Any]:
        body: dict[str, Any] = requests.get(f"{server.url}/model/iris/shadow", timeout=10).json()
        return body

    assert _until(lambda: report()["rows"] == len(rows)), report()
    got = report()
    ours, theirs = one.predict(rows), two.predict(rows)
    confusion: dict[str, dict[str, int]] = {}
    for a, b in zip(ours, theirs, strict=True):
        confusion.setdefault(str(a), {}).setdefault(str(b), 0)
        confusion[str(a)][str(b)] += 1
    assert got["agreement"] == pytest.approx(float(np.mean(ours == theirs)))
    assert got["confusion"] == confusion
    diff = np.abs(one.predict_proba(rows) - two.predict_proba(rows)).max(axis=1)
    assert got["probability_difference"]["max"] == pytest.approx(diff.max())
    assert got["probability_difference"]["mean"] == pytest.approx(diff.mean())
    assert (got["requests"], got["failures"]["rows"], got["dropped_requests"]) == (30, 0, 0)
    assert got["challenger_seconds"]["per_row"] > 0

    # a challenger whose predictions raise: counted, and no client sees it
    broken = _send(server.url, "broken", batches[:6])
    assert {(r.status_code, r.headers["X-Model-Version"]) for r in broken} == {(200, "1")}
    shadow = f"{server.url}/model/broken/shadow"
    assert _until(lambda: requests.get(shadow, timeout=10).json()["failures"]["rows"] == 30)

    promoted = requests.post(
        f"{server.url}/v2/repository/models/iris/shadow/promote", headers=ADMIN, timeout=10
    )
    assert promoted.json() == {"name": "iris", "version": "2", "state": "READY"}

    def all_two() -> bool:
        answers = _send(server.url, "iris", batches[:10])
        return all(r.headers["X-Model-Version"] == "2" for r in answers) and all(
            r.json()["result"] == two.predict(b).tolist()
            for r, b in zip(answers, batches, strict=False)
        )

    assert _until(all_two)
