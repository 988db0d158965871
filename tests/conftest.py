"""Shared fixtures: one trained iris artifact, an app, a client, a real server."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from census import census_frame, onehot_pipeline
from components import require_module
from flaskserve.app import create_app
from flaskserve.packaging import save_model
from flaskserve.settings import ENV_PREFIX, Settings
from flaskserve.training import load_iris_dataset, train
from liveserver import SERVERS, LiveServer, start_server

# Native batches' libraries (runtime/native.py) are built once for the whole run, every
# xdist worker and server process included, and not in the developer's own cache.
os.environ.setdefault(
    "FLASKSERVE_NATIVE_CACHE",
    str(Path(tempfile.gettempdir()) / f"flaskserve-native-tests-{os.getuid()}"),
)

TUTORIAL_ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
FLASKSERVE = str(Path(sys.executable).with_name("flaskserve"))


def require_component(name: str, why: str) -> str:
    """The path of the program *name*, which the calling test needs for *why*.

    CI installs every program the tests use (``.ci/run``), so there (``CI`` set, as CI
    services do) a missing one fails the test, naming it: a skip would leave CI green
    without the test having run. Elsewhere the test is skipped, saying what to install.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed: {why}"
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{message} (.ci/run installs it; CI must not skip this test)", pytrace=False)
    pytest.skip(message)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--every-server",
        action="store_true",
        help="also run the granian cases that CI leaves out (every_server marker)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out (deselect, not skip) the granian cases that ``--every-server`` asks for.

    Their promise is checked on granian by another test in every run; these repeat the long
    ones (fuzzing, the soak, the SIGKILL run). A skip would read as a component missing.
    """
    if config.getoption("--every-server"):
        return
    kept = [item for item in items if not item.get_closest_marker("every_server")]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture(autouse=True)
def _clear_flaskserve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial's iris forest, trained and packaged by flaskserve itself."""
    out = tmp_path_factory.mktemp("models") / "iris"
    train(load_iris_dataset(), out, name="iris")
    return out


def iris_with_challenger(tutorial: Path, root: Path) -> Path:
    """A repository at *root*: iris 1, the tutorial's forest (copied from *tutorial*), and
    iris 2, five trees of another seed, the challenger of the shadow tests."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    from flaskserve.training import IRIS_FEATURES

    shutil.copytree(tutorial, root / "iris" / "1")
    data = load_iris()
    forest = RandomForestClassifier(n_estimators=5, random_state=7).fit(data.data, data.target)
    save_model(
        forest,
        root / "iris" / "2",
        sample=data.data,
        feature_names=IRIS_FEATURES,
        class_names=[str(n) for n in data.target_names],
        name="iris",
        version=2,
    )
    return root


@pytest.fixture(scope="session")
def census() -> tuple[Any, Any]:
    """The census-like table (tests/census.py): a DataFrame of features and the target."""
    return census_frame()


@pytest.fixture(scope="session")
def census_pipeline(census: tuple[Any, Any]) -> Any:
    """A fitted ColumnTransformer pipeline: imputed one-hot text, scaled numbers."""
    return onehot_pipeline(*census)


@pytest.fixture(scope="session")
def census_dir(tmp_path_factory: pytest.TempPathFactory, census_pipeline: Any, census: Any) -> Path:
    """:func:`census_pipeline` saved by ``save_model(pipe, path, sample=frame)``."""
    out = tmp_path_factory.mktemp("models") / "census"
    save_model(census_pipeline, out, sample=census[0])
    return out


@pytest.fixture(scope="session")
def census_app(census_dir: Path) -> Flask:
    """The census pipeline served by scikit-learn itself: answers equal its own exactly."""
    return create_app(Settings(model_dir=census_dir, runtime="sklearn"))


@pytest.fixture(scope="session")
def tutorial_accuracy() -> float:
    """The tutorial's accuracy, from scikit-learn alone: its forest on its 70/30 iris split."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=1234)
    forest = RandomForestClassifier(n_estimators=300, random_state=1234).fit(x_train, y_train)
    return float(accuracy_score(y_test, forest.predict(x_test)))


@pytest.fixture(scope="session")
def app(model_dir: Path) -> Flask:
    return create_app(Settings(model_dir=model_dir))


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def http_server(request: pytest.FixtureRequest) -> str:
    """The server ``flaskserve serve`` runs under: gunicorn, unless a test is parametrized
    over both (``liveserver.on_both_servers``)."""
    name: str = getattr(request, "param", SERVERS[0])
    if name == "granian":
        require_module("granian", "pip install 'flaskserve[granian]'")
    return name


@pytest.fixture(scope="session")
def live_server(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory, http_server: str
) -> Iterator[LiveServer]:
    """``flaskserve serve`` with two workers, as a user would start it."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    args = [FLASKSERVE, "serve", str(model_dir), "--port", "{port}", "--workers", "2"]
    server = start_server(args, log, http_server=http_server)
    yield server
    server.stop()


ServerStarter = Callable[..., LiveServer]


@pytest.fixture()
def start(tmp_path: Path, http_server: str) -> Iterator[ServerStarter]:
    """Start servers with ``start(args, **kwargs)``; all are stopped after the test.

    A ``flaskserve serve`` command runs under the test's ``http_server``.
    """
    started: list[LiveServer] = []

    def _start(args: list[str], **kwargs: object) -> LiveServer:
        log = tmp_path / f"server{len(started)}.log"
        kwargs.setdefault("http_server", http_server)
        server = start_server(args, log, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()
