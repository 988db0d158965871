"""Tests for the flaskserve command line (click's CliRunner; no server is started)."""

from __future__ import annotations

import pathlib
import pickle
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import classification_report
from sklearn.model_selection import train_test_split

import flaskserve
from flaskserve.cli import main
from flaskserve.runtime import native

TUTORIAL_ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
IRIS_FEATURES = "sepal_length,sepal_width,petal_length,petal_width"
IRIS_CLASSES = "setosa,versicolor,virginica"
IRIS = load_iris()


class TouchOnUnpickle:
    """Unpickling this creates *sentinel*: a stand-in for a malicious pickle."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.sentinel,))


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory: the CLI's defaults (build/...) are relative to it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def tutorial_pickle() -> bytes:
    """The tutorial's build/model.pkl: a 300-tree forest on the 70/30 iris split."""
    x_train, _, y_train, _ = train_test_split(
        IRIS["data"], IRIS["target"], test_size=0.3, random_state=1234
    )
    model = RandomForestClassifier(n_estimators=300, random_state=1234).fit(x_train, y_train)
    return pickle.dumps(model)


@pytest.fixture()
def model_pkl(workdir: Path, tutorial_pickle: bytes) -> Path:
    path = workdir / "build" / "model.pkl"
    path.parent.mkdir()
    path.write_bytes(tutorial_pickle)
    return path


@pytest.fixture()
def busy_port() -> Iterator[int]:
    """A loopback port already in use: should a refusal regress, no server can bind it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port: int = s.getsockname()[1]
        yield port


def _assert_refused(result: Result, *fragments: str) -> None:
    """Exit 2 with a one-line error naming *fragments*, and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "Error: " in result.output
    for fragment in fragments:
        assert fragment in result.output


def _iris_csv(path: Path, target: str = "species") -> Path:
    names = IRIS["target_names"][IRIS["target"]]
    lines = [",".join(map(str, row)) + f",{n}" for row, n in zip(IRIS["data"], names, strict=True)]
    path.write_text(f"{IRIS_FEATURES},{target}\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _tutorial_row(manifest: flaskserve.ModelManifest) -> np.ndarray:
    return np.array([[TUTORIAL_ROW[n] for n in manifest.feature_names]])


# --- general ---------------------------------------------------------------------------------


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"flaskserve, version {flaskserve.__version__}\n"


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "import", "serve", "quickstart"):
        assert f"  {command} " in result.output


def test_unknown_command(runner: CliRunner) -> None:
    _assert_refused(runner.invoke(main, ["fly"]), "No such command 'fly'")


# --- train -----------------------------------------------------------------------------------


def test_train_iris(runner: CliRunner, workdir: Path, tutorial_accuracy: float) -> None:
    result = runner.invoke(main, ["train"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"Accuracy :  {tutorial_accuracy}"
    assert result.stderr == "saved iris v1 to build/iris\n"
    artifact = workdir / "build" / "iris"
    names = ["flaskserve.json", "model.onnx", "model.skops"]
    names += [] if native.unavailable() else ["native.tl"]  # CI has it (test_native.py)
    assert sorted(p.name for p in artifact.iterdir()) == names
    assert sorted(p.name for p in (workdir / "build").iterdir()) == ["iris"]

    loaded = flaskserve.load_model(artifact)
    assert loaded.manifest.name == "iris"
    assert loaded.manifest.class_names == ("setosa", "versicolor", "virginica")
    np.testing.assert_array_equal(loaded.estimator.predict(_tutorial_row(loaded.manifest)), [2])
    # The rest is the classification report of the tutorial's test split.
    _, x_test, _, y_test = train_test_split(
        IRIS["data"], IRIS["target"], test_size=0.3, random_state=1234
    )
    report = classification_report(y_test, loaded.estimator.predict(x_test), zero_division=0)
    assert [line.rstrip() for line in lines[1:] if line.strip()] == [
        line.rstrip() for line in report.splitlines() if line.strip()
    ]
    assert "precision    recall  f1-score   support" in lines[1] + lines[2]
    assert any(line.split()[:1] == ["accuracy"] for line in lines)


def test_train_csv(runner: CliRunner, workdir: Path) -> None:
    csv_file = _iris_csv(workdir / "flowers.csv")
    result = runner.invoke(
        main, ["train", str(csv_file), "--target", "species", "--name", "petals", "--out", "m/p"]
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Accuracy :  ")
    assert "virginica" in result.stdout
    assert result.stderr == "saved petals v1 to m/p\n"
    assert not (workdir / "build").exists()
    loaded = flaskserve.load_model(workdir / "m" / "p")
    assert loaded.manifest.name == "petals"
    assert loaded.manifest.labels == ("setosa", "versicolor", "virginica")
    assert list(loaded.manifest.feature_names) == IRIS_FEATURES.split(",")
    np.testing.assert_array_equal(
        loaded.estimator.predict(_tutorial_row(loaded.manifest)), ["virginica"]
    )


def test_train_csv_defaults_to_the_file_stem(runner: CliRunner, workdir: Path) -> None:
    _iris_csv(workdir / "my_flowers.csv", target="kind")
    result = runner.invoke(main, ["train", "my_flowers.csv", "--target", "kind"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "saved my_flowers v1 to build/my_flowers\n"
    assert flaskserve.load_model(workdir / "build" / "my_flowers").manifest.name == "my_flowers"


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("a,b,y\n" + "1,2,0\n" * 12, "label", "no column 'label'; the columns are: a, b, y"),
        (
            "a,b,y\n" + "1,2,0\n" * 4 + "1,inf,0\n" + "1,2,1\n" * 8,
            "y",
            "line 6, column 'b': 'inf' is not a finite number",
        ),
        ("a,b,y\n" + "1,2,0\n" * 3 + "1,2\n" + "1,2,1\n" * 8, "y", "line 5: expected 3 fields"),
        ("a,b,y\n" + "1,2,0\n" * 3, "y", "3 data rows; at least 10 are needed"),
        ("", "y", "empty file"),
        ("a,a,y\n" + "1,2,0\n" * 12, "y", "the header row must name every column once"),
    ],
    ids=["missing-target", "infinite", "ragged", "too-few-rows", "empty", "duplicate-header"],
)
def test_train_refuses_a_bad_csv(
    text: str, target: str, message: str, runner: CliRunner, workdir: Path
) -> None:
    (workdir / "data.csv").write_text(text, encoding="utf-8")
    result = runner.invoke(main, ["train", "data.csv", "--target", target])
    _assert_refused(result, "Invalid value for CSV_FILE", message)
    assert not (workdir / "build").exists()


def test_train_refuses_a_missing_file(runner: CliRunner, workdir: Path) -> None:
    result = runner.invoke(main, ["train", "absent.csv", "--target", "y"])
    _assert_refused(result, "absent.csv: no such file")
    assert not (workdir / "build").exists()


def test_train_refuses_target_without_csv(runner: CliRunner, workdir: Path) -> None:
    result = runner.invoke(main, ["train", "--target", "species"])
    _assert_refused(result, "--target needs a CSV file")
    assert not (workdir / "build").exists()


def test_train_refuses_csv_without_target(runner: CliRunner, workdir: Path) -> None:
    _iris_csv(workdir / "flowers.csv")
    result = runner.invoke(main, ["train", "flowers.csv"])
    _assert_refused(result, "--target COLUMN is required with a CSV file")
    assert not (workdir / "build").exists()


def test_train_refuses_out_that_is_a_file(runner: CliRunner, workdir: Path) -> None:
    (workdir / "taken").write_text("x")
    result = runner.invoke(main, ["train", "--out", "taken"])
    _assert_refused(result, "'taken' is a file")


# --- import ----------------------------------------------------------------------------------


def test_import_refuses_without_trust_pickle(
    runner: CliRunner, workdir: Path, model_pkl: Path
) -> None:
    result = runner.invoke(
        main, ["import", "build/model.pkl", "--features", IRIS_FEATURES, "--out", "build/iris"]
    )
    _assert_refused(result, "--trust-pickle", "runs any code", "__reduce__", "skops")
    assert not (workdir / "build" / "iris").exists()
    assert sorted(p.name for p in (workdir / "build").iterdir()) == ["model.pkl"]


def test_import_without_trust_never_unpickles(runner: CliRunner, workdir: Path) -> None:
    sentinel = workdir / "pwned"
    (workdir / "evil.pkl").write_bytes(pickle.dumps(TouchOnUnpickle(sentinel)))
    result = runner.invoke(main, ["import", "evil.pkl", "--features", "a"])
    _assert_refused(result, "--trust-pickle")
    assert not sentinel.exists()


def test_import_with_trust_pickle(runner: CliRunner, workdir: Path, model_pkl: Path) -> None:
    result = runner.invoke(
        main,
        [
            "import",
            "build/model.pkl",
            "--features",
            IRIS_FEATURES,
            "--class-names",
            IRIS_CLASSES,
            "--out",
            "build/iris",
            "--trust-pickle",
        ],
    )

    assert result.exit_code == 0, result.output
    assert result.output == (
        "saved iris v1 (sklearn.ensemble._forest.RandomForestClassifier) to build/iris\n"
    )
    loaded = flaskserve.load_model(workdir / "build" / "iris")
    manifest = loaded.manifest
    assert manifest.name == "iris"
    assert manifest.task == "classification"
    assert list(manifest.feature_names) == IRIS_FEATURES.split(",")
    assert manifest.labels == (0, 1, 2)
    assert manifest.class_names == ("setosa", "versicolor", "virginica")
    assert manifest.sample == {}
    np.testing.assert_array_equal(loaded.estimator.predict(_tutorial_row(manifest)), [2])
    original = pickle.loads(model_pkl.read_bytes())
    np.testing.assert_array_equal(
        loaded.estimator.predict_proba(IRIS["data"]), original.predict_proba(IRIS["data"])
    )


def test_import_defaults(runner: CliRunner, workdir: Path, model_pkl: Path) -> None:
    result = runner.invoke(
        main,
        ["import", str(model_pkl), "--features", " a, b ,c,d,", "--name", "x", "--trust-pickle"],
    )
    assert result.exit_code == 0, result.output
    manifest = flaskserve.load_model(workdir / "build" / "iris").manifest
    assert manifest.name == "x"
    assert list(manifest.feature_names) == ["a", "b", "c", "d"]
    assert manifest.class_names == ("0", "1", "2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--features", "a,b,c"], "feature_names: expected 4 names, got 3"),
        (["--features", "a,b,c,d,e"], "feature_names: expected 4 names, got 5"),
        (["--features", "a,b,a,d"], "feature_names: names must be unique"),
        (
            ["--features", IRIS_FEATURES, "--class-names", "setosa,versicolor"],
            "class_names: expected 3 names, got 2",
        ),
    ],
    ids=["too-few-features", "too-many-features", "duplicate-features", "too-few-classes"],
)
def test_import_refuses_names_that_do_not_fit(
    args: list[str], message: str, runner: CliRunner, workdir: Path, model_pkl: Path
) -> None:
    result = runner.invoke(main, ["import", "build/model.pkl", *args, "--trust-pickle"])
    _assert_refused(result, "Invalid value for PICKLE_FILE", message)
    assert not (workdir / "build" / "iris").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a pickle\n", "not a readable pickle"),
        (b"", "not a readable pickle"),
        (pickle.dumps({"model": "forest"}), "expected a fitted scikit-learn estimator"),
        (
            pickle.dumps(RandomForestClassifier(n_estimators=3)),
            "expected a fitted scikit-learn estimator",
        ),
    ],
    ids=["text", "empty", "dict", "unfitted-estimator"],
)
def test_import_refuses_a_file_that_is_not_a_model(
    content: bytes, message: str, runner: CliRunner, workdir: Path
) -> None:
    (workdir / "model.pkl").write_bytes(content)
    result = runner.invoke(
        main, ["import", "model.pkl", "--features", IRIS_FEATURES, "--trust-pickle"]
    )
    _assert_refused(result, "Invalid value for PICKLE_FILE", message)
    assert not (workdir / "build").exists()


def test_import_refuses_a_missing_file(runner: CliRunner, workdir: Path) -> None:
    result = runner.invoke(main, ["import", "nope.pkl", "--features", "a", "--trust-pickle"])
    _assert_refused(result, "'nope.pkl' does not exist")


def test_import_requires_features(runner: CliRunner, workdir: Path, model_pkl: Path) -> None:
    result = runner.invoke(main, ["import", "build/model.pkl", "--trust-pickle"])
    _assert_refused(result, "Missing option '--features'")


def test_import_reports_an_unwritable_out(
    runner: CliRunner, workdir: Path, model_pkl: Path
) -> None:
    (workdir / "afile").write_text("x")
    result = runner.invoke(
        main,
        [
            "import",
            "build/model.pkl",
            "--features",
            IRIS_FEATURES,
            "--out",
            "afile/iris",
            "--trust-pickle",
        ],
    )
    _assert_refused(result, "afile")


# --- serve (refusals only: each exits before a server starts) ---------------------------------


def test_serve_refuses_a_missing_artifact(runner: CliRunner, workdir: Path, busy_port: int) -> None:
    result = runner.invoke(main, ["serve", "nowhere", "--port", str(busy_port)])
    _assert_refused(result, "Invalid value for MODEL_DIR", "flaskserve.json")
    assert "flaskserve train" not in result.output


def test_serve_default_dir_suggests_training(
    runner: CliRunner, workdir: Path, busy_port: int
) -> None:
    result = runner.invoke(main, ["serve", "--port", str(busy_port)])
    _assert_refused(result, "build/iris: no such directory", "(run `flaskserve train` first)")


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "192.168.1.10", "example.com"],
    ids=["any-ipv4", "any-ipv6", "lan-address", "hostname"],
)
def test_serve_refuses_the_debugger_off_loopback(
    host: str, runner: CliRunner, model_dir: Path, busy_port: int
) -> None:
    args = ["serve", str(model_dir), "--dev", "--debugger", "--host", host]
    result = runner.invoke(main, [*args, "--port", str(busy_port)])
    _assert_refused(result, "loopback only", host)


def test_serve_refuses_the_debugger_without_dev(
    runner: CliRunner, model_dir: Path, busy_port: int
) -> None:
    result = runner.invoke(main, ["serve", str(model_dir), "--debugger", "--port", str(busy_port)])
    _assert_refused(result, "--debugger needs --dev")


def test_serve_refuses_a_tampered_artifact(
    runner: CliRunner, model_dir: Path, tmp_path: Path, busy_port: int
) -> None:
    copy = tmp_path / "iris"
    shutil.copytree(model_dir, copy)
    model = copy / "model.skops"
    model.write_bytes(model.read_bytes() + b"\0")
    result = runner.invoke(main, ["serve", str(copy), "--port", str(busy_port)])
    _assert_refused(result, "Invalid value for MODEL_DIR", "SHA-256 mismatch")


def test_serve_refuses_a_bad_setting(runner: CliRunner, model_dir: Path, busy_port: int) -> None:
    result = runner.invoke(
        main,
        ["serve", str(model_dir), "--port", str(busy_port)],
        env={"FLASKSERVE_MAX_ROWS": "lots"},
    )
    _assert_refused(result, "FLASKSERVE_MAX_ROWS: expected a positive integer, got 'lots'")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "Invalid value for '--port'"),
        (["--port", "web"], "Invalid value for '--port'"),
        (["--workers", "0"], "Invalid value for '--workers'"),
        (["--shadow", "iris"], "FLASKSERVE_SHADOW: expected NAME=VERSION[@FRACTION], got 'iris'"),
        (["--shadow", "iris=2@1.5"], "'iris=2@1.5': the fraction must be in (0, 1]"),
        (["--log-sample", "0"], "Invalid value for '--log-sample'"),
    ],
    ids=["port-too-high", "port-not-a-number", "no-workers", "shadow", "fraction", "sample"],
)
def test_serve_refuses_bad_options(
    args: list[str], message: str, runner: CliRunner, model_dir: Path, busy_port: int
) -> None:
    # The last --port wins: the busy one only matters should a check regress.
    result = runner.invoke(main, ["serve", str(model_dir), "--port", str(busy_port), *args])
    _assert_refused(result, message)


def test_serve_without_pyarrow_says_which_extra_the_log_needs(
    runner: CliRunner,
    model_dir: Path,
    busy_port: int,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # as if not installed
    args = ["serve", str(model_dir), "--port", str(busy_port), "--log-dir", str(workdir / "log")]
    _assert_refused(runner.invoke(main, args), "pip install 'flaskserve[log]'")


def test_import_refuses_a_model_serve_would_not_load(runner: CliRunner, workdir: Path) -> None:
    """A type outside the trusted list is refused before anything is written."""
    from fractions import Fraction

    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    model.notes_ = Fraction(1, 3)  # any attribute of a type skops does not trust
    (workdir / "odd.pkl").write_bytes(pickle.dumps(model))
    result = runner.invoke(
        main, ["import", "odd.pkl", "--features", IRIS_FEATURES, "--out", "odd", "--trust-pickle"]
    )
    _assert_refused(result, "fractions.Fraction")
    assert not (workdir / "odd").exists()


def test_serve_refuses_an_unknown_default_model(
    runner: CliRunner, model_dir: Path, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASKSERVE_DEFAULT_MODEL", "irsi")
    result = runner.invoke(main, ["serve", str(model_dir), "--port", str(busy_port)])
    _assert_refused(result, "FLASKSERVE_DEFAULT_MODEL: 'irsi' is not a model", "models: iris")
