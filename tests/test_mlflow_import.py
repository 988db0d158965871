"""``flaskserve import MLFLOW_DIR|models:/...``: directories written by MLflow itself,
imported, served through the test client and answering as the original model does."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient

from census import ROW, census_frame, onehot_pipeline
from components import require_module
from flaskserve.app import create_app
from flaskserve.cli import main
from flaskserve.settings import Settings

mlflow = require_module("mlflow", "pip install 'flaskserve[mlflow]'")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:mlflow")


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def census() -> tuple[Any, Any, Any]:
    frame, target = census_frame(rows=200)
    return frame, target, onehot_pipeline(frame, target)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, census: tuple[Any, Any, Any]) -> Path:
    """MLflow model directories, each written by mlflow's own ``save_model``."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("mlflow")
    frame, _, pipe = census
    numbers, labels = _numbers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's hints on integer columns and pickles
        signature = infer_signature(frame, pipe.predict(frame))
        save = mlflow.sklearn.save_model
        skops = {"serialization_format": "skops", "skops_trusted_types": ["numpy.dtype"]}
        save(pipe, root / "census", **skops, signature=signature, input_example=frame.head(5),
             pip_requirements=[])  # fmt: skip
        save(pipe, root / "census-signature", **skops, signature=signature,
             pip_requirements=[])  # fmt: skip
        plain = LogisticRegression(max_iter=500).fit(numbers, labels)
        save(plain, root / "pickled", serialization_format="cloudpickle", pip_requirements=[])
    return root


def _numbers() -> tuple[Any, Any]:
    import pandas as pd

    rng = np.random.default_rng(0)
    numbers = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    return numbers, (numbers["a"] + numbers["b"] > 0).astype(int).to_numpy()


def _import(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["import", *args, "--out", str(tmp_path / "out")])


def _client(out: Path) -> FlaskClient:
    return create_app(Settings(model_dir=out, runtime="sklearn")).test_client()


def _json(response: Any) -> Any:
    assert response.json is not None, response.data
    return response.json


def _refused(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_a_skops_sklearn_model_answers_as_it_did(
    models: Path, tmp_path: Path, census: tuple[Any, Any, Any]
) -> None:
    import pandas as pd

    frame, _, pipe = census
    result = _import(tmp_path, str(models / "census"), "--name", "census")
    assert result.exit_code == 0, result.output
    client = _client(tmp_path / "out")
    rows = frame.head(20).astype(object).where(frame.head(20).notna(), None)
    answer = client.post("/predict", json=rows.to_dict(orient="records"))
    assert answer.status_code == 200, _json(answer)
    assert _json(answer) == {"result": list(pipe.predict(frame.head(20)))}
    one = client.post("/predict", json=ROW)
    assert _json(one) == {"result": list(pipe.predict(pd.DataFrame([ROW])))}


def test_the_signature_and_example_type_the_features(models: Path, tmp_path: Path) -> None:
    assert _import(tmp_path, str(models / "census")).exit_code == 0
    described = _json(_client(tmp_path / "out").get("/model"))
    features = {f["name"]: f for f in described["features"]}
    assert features["workclass"]["type"] == "text" and features["workclass"]["nullable"]
    assert features["hours_per_week"]["nullable"]
    assert features["age"]["type"] == "integer"
    assert described["source"]["kind"] == "mlflow"
    assert described["source"]["flavor"] == "sklearn"
    mlmodel = (models / "census" / "MLmodel").read_text()
    assert f"model_uuid: {described['source']['model_uuid']}" in mlmodel
    assert described["name"] == "census"  # the directory's name
    card = _client(tmp_path / "out").get("/ui/census").get_data(as_text=True)
    assert 'id="source"' in card and described["source"]["model_uuid"] in card


def test_without_an_input_example_the_signature_alone_types_them(
    models: Path, tmp_path: Path, census: tuple[Any, Any, Any]
) -> None:
    result = _import(tmp_path, str(models / "census-signature"))
    assert result.exit_code == 0, result.output
    assert "note: no input example" in result.output
    client = _client(tmp_path / "out")
    features = {f["name"]: f for f in _json(client.get("/model"))["features"]}
    assert features["education"]["type"] == "text"
    assert "Bachelors" in features["education"]["categories"]  # the encoder's, not made up
    assert features["hours_per_week"]["nullable"]
    _, _, pipe = census
    import pandas as pd

    assert _json(client.post("/predict", json=ROW)) == {
        "result": list(pipe.predict(pd.DataFrame([ROW])))
    }


def test_a_pickled_flavour_is_refused_without_trust(models: Path, tmp_path: Path) -> None:
    result = _import(tmp_path, str(models / "pickled"))
    _refused(result, "model.pkl", "cloudpickle", "--trust-pickle")
    assert not (tmp_path / "out").exists()


def test_a_pickled_flavour_is_imported_with_trust(models: Path, tmp_path: Path) -> None:
    numbers, labels = _numbers()
    result = _import(tmp_path, str(models / "pickled"), "--trust-pickle")
    assert result.exit_code == 0, result.output
    assert "model.pkl" in (models / "pickled" / "MLmodel").read_text()
    client = _client(tmp_path / "out")
    from sklearn.linear_model import LogisticRegression

    same = LogisticRegression(max_iter=500).fit(numbers, labels)  # as the fixture fitted it
    answer = client.post("/predict", json=numbers.head(10).to_numpy().tolist())
    assert _json(answer) == {"result": same.predict(numbers.head(10)).tolist()}


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_a_booster_flavour_answers_as_it_did(library: str, tmp_path: Path) -> None:
    require_module(library, f"pip install 'flaskserve[{library}]'")
    model, numbers = _booster(library, tmp_path / "mlflow")
    result = _import(tmp_path, str(tmp_path / "mlflow"))
    assert result.exit_code == 0, result.output
    client = _client(tmp_path / "out")
    answer = client.post("/predict", json=numbers.head(10).to_dict(orient="records"))
    assert answer.status_code == 200, _json(answer)
    assert _json(answer) == {"result": model.predict(numbers.head(10)).tolist()}
    assert _json(client.get("/model"))["source"]["flavor"] == library


def _booster(library: str, path: Path) -> tuple[Any, Any]:
    numbers, labels = _numbers()
    if library == "xgboost":
        import mlflow.xgboost
        import xgboost

        model = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(numbers, labels)
        mlflow.xgboost.save_model(model, path, pip_requirements=[])
    else:
        import lightgbm
        import mlflow.lightgbm

        model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(numbers, labels)
        mlflow.lightgbm.save_model(model, path, pip_requirements=[])
    return model, numbers


@pytest.fixture()
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A local file-store tracking directory with model ``demo``, alias ``champion``: v1."""
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'mlruns'}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    numbers, labels = _numbers()
    model = LogisticRegression().fit(numbers, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run() as run:
            mlflow.sklearn.log_model(
                model, name="model", serialization_format="skops", pip_requirements=[],
                registered_model_name="demo", input_example=numbers.head(3),
            )  # fmt: skip
        mlflow.MlflowClient().set_registered_model_alias("demo", "champion", "1")
    return str(run.info.run_id)


def test_a_registered_model_is_imported_by_alias(registry: str, tmp_path: Path) -> None:
    result = _import(tmp_path, "models:/demo@champion")
    assert result.exit_code == 0, result.output
    source = _json(_client(tmp_path / "out").get("/model"))["source"]
    assert source["uri"] == "models:/demo@champion"
    assert source["registered_name"] == "demo" and source["version"] == "1"
    assert source["alias"] == "champion" and source["run_id"] == registry
    manifest = json.loads((tmp_path / "out" / "flaskserve.json").read_text())
    assert manifest["name"] == "demo"


def test_a_uri_needs_a_tracking_server(tmp_path: Path) -> None:
    _refused(_import(tmp_path, "models:/demo@champion"), "MLFLOW_TRACKING_URI")


def _broken(models: Path, tmp_path: Path, case: str) -> Path:
    directory = tmp_path / case
    if case == "no-mlmodel":
        directory.mkdir()
    elif case == "unknown-flavour":
        directory.mkdir()
        (directory / "MLmodel").write_text("flavors:\n  pytorch:\n    model_data: data\n")
    else:
        shutil.copytree(models / "census", directory)
        (directory / "model.skops").unlink()
    return directory


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-mlmodel", "no MLmodel file"),
        ("unknown-flavour", "flavours pytorch"),
        ("missing-file", "model.skops: missing"),
    ],
    ids=["no-mlmodel", "unknown-flavour", "missing-file"],
)
def test_a_bad_directory_is_refused_in_one_line(
    case: str, message: str, models: Path, tmp_path: Path
) -> None:
    _refused(_import(tmp_path, str(_broken(models, tmp_path, case))), message)
    assert not (tmp_path / "out").exists()
