"""The model registry without Flask: discovery, checked loads, snapshots, reloads."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression

from flaskserve import admission, save_model
from flaskserve.artifact import MANIFEST_NAME, MODEL_NAME
from flaskserve.errors import InvalidInput, ModelNotFound, ModelNotReady
from flaskserve.runtime import registry as registry_module
from flaskserve.runtime.base import Runtime
from flaskserve.runtime.registry import (
    UNLOADED_FILE,
    ModelRegistry,
    Snapshot,
    discover,
    parse_version,
    validate_name,
)
from flaskserve.training import IRIS_FEATURES

# --- artifacts and repositories -------------------------------------------------------------


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A five-tree iris forest: cheap to copy and to load, with smoke rows."""
    x, y = load_iris(return_X_y=True)
    out = tmp_path_factory.mktemp("small") / "small"
    estimator = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    save_model(estimator, out, sample=x, feature_names=IRIS_FEATURES, name="small")
    return out


@pytest.fixture(scope="module")
def reg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different model: sepal length from the petal measurements."""
    x, _ = load_iris(return_X_y=True)
    out = tmp_path_factory.mktemp("reg") / "reg"
    estimator = LinearRegression().fit(x[:, 2:], x[:, 0])
    save_model(estimator, out, sample=x[:, 2:], feature_names=IRIS_FEATURES[2:], name="reg")
    return out


@pytest.fixture(scope="module")
def iris_snapshot(model_dir: Path) -> Snapshot:
    """The tutorial's artifact served alone, loaded once for the module."""
    return ModelRegistry(model_dir).refresh()


def drop(source: Path, root: Path, name: str, version: int | str) -> Path:
    """Copy an artifact into ``root/name/version`` atomically, as a deployment should."""
    target = root / name / str(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = root / f".incoming-{name}-{version}"
    shutil.copytree(source, staging)
    os.replace(staging, target)
    return target


def edit_manifest(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    manifest_path = path / MANIFEST_NAME
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    change(data)
    manifest_path.write_text(json.dumps(data), encoding="utf-8")


def tamper(path: Path) -> None:
    with (path / MODEL_NAME).open("ab") as model_file:
        model_file.write(b"\x00tampered")


def wrong_smoke_labels(path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["sample"]["predictions"] = [(p + 1) % 3 for p in data["sample"]["predictions"]]

    edit_manifest(path, change)


def one_feature_fewer(path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["features"] = data["features"][:-1]

    edit_manifest(path, change)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def watcher_threads() -> int:
    return sum(t.name == "flaskserve-watch" for t in threading.enumerate())


# --- single-artifact mode ---------------------------------------------------------------------


def test_single_artifact_is_served_under_its_manifest_name(iris_snapshot: Snapshot) -> None:
    assert iris_snapshot.error is None
    assert iris_snapshot.default_name == "iris"
    default = iris_snapshot.get()
    assert (default.name, default.version) == ("iris", 1)
    assert iris_snapshot.get("iris", "1") is default
    assert iris_snapshot.get("iris", 1) is default
    assert iris_snapshot.get("iris") is default
    assert iris_snapshot.ready
    assert iris_snapshot.statuses() == [
        {"name": "iris", "version": "1", "state": "READY", "reason": ""}
    ]


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        (None, 2, "model 'iris' has no version 2"),
        ("iris", "2", "model 'iris' has no version 2"),
        ("nope", None, "no model named 'nope'"),
        ("nope", "1", "no model named 'nope'"),
    ],
    ids=["default-v2", "iris-v2", "unknown", "unknown-v1"],
)
def test_single_artifact_unknown_name_or_version(
    iris_snapshot: Snapshot, name: str | None, version: int | str | None, message: str
) -> None:
    with pytest.raises(ModelNotFound, match=message):
        iris_snapshot.get(name, version)


@pytest.mark.parametrize(
    ("name", "version"),
    [("bad name", None), ("iris", "0"), ("iris", "one")],
    ids=["bad-name", "zero", "word"],
)
def test_single_artifact_malformed_request(
    iris_snapshot: Snapshot, name: str, version: str | None
) -> None:
    with pytest.raises(InvalidInput):
        iris_snapshot.get(name, version)


def test_single_artifact_with_unsafe_manifest_name_is_not_a_client_error(
    small_dir: Path, tmp_path: Path
) -> None:
    artifact = tmp_path / "my model"
    shutil.copytree(small_dir, artifact)
    edit_manifest(artifact, lambda data: data.update(name="my model"))
    snapshot = ModelRegistry(artifact).refresh()
    with pytest.raises(ModelNotReady, match="'my model' cannot be served"):
        snapshot.get()  # refused with a reason, not blamed on the client (400)


# --- repository mode: discovery ---------------------------------------------------------------


def test_highest_version_is_the_default_per_name(
    small_dir: Path, reg_dir: Path, tmp_path: Path
) -> None:
    for version in (1, 2, 10):
        drop(small_dir, tmp_path, "iris", version)
    for version in (1, 3):
        drop(reg_dir, tmp_path, "reg", version)
    snapshot = ModelRegistry(tmp_path).refresh()
    assert snapshot.error is None and not snapshot.failures
    assert {name: sorted(versions) for name, versions in snapshot.models.items()} == {
        "iris": [1, 2, 10],
        "reg": [1, 3],
    }
    assert snapshot.default_name == "iris"
    assert snapshot.get().version == 10  # numeric order, not "2" > "10"
    assert snapshot.get("reg").version == 3
    assert snapshot.get("iris", "2").version == 2
    assert list(snapshot.get("reg").runtime.manifest.feature_names) == [
        "petal_length",
        "petal_width",
    ]
    with pytest.raises(ModelNotFound, match="model 'reg' has no version 2"):
        snapshot.get("reg", 2)


def test_directory_names_win_over_the_manifest(small_dir: Path, tmp_path: Path) -> None:
    drop(small_dir, tmp_path, "flowers", 7)
    served = ModelRegistry(tmp_path).refresh().get()
    assert (served.name, served.version) == ("flowers", 7)
    assert (served.runtime.manifest.name, served.runtime.manifest.version) == ("small", 1)


@pytest.mark.parametrize(
    ("names", "setting", "expected"),
    [
        (["solo"], None, "solo"),
        (["beta", "alpha"], None, "alpha"),
        (["beta", "alpha"], "beta", "beta"),
    ],
    ids=["only-one", "sorted-first", "setting"],
)
def test_default_model(
    small_dir: Path, tmp_path: Path, names: list[str], setting: str | None, expected: str
) -> None:
    for name in names:
        drop(small_dir, tmp_path, name, 1)
    snapshot = ModelRegistry(tmp_path, default_model=setting).refresh()
    assert snapshot.default_name == expected
    assert snapshot.get().name == expected


def test_configured_default_that_does_not_exist_is_not_replaced(
    small_dir: Path, tmp_path: Path
) -> None:
    """A typo in FLASKSERVE_DEFAULT_MODEL must be loud, not silently serve another model."""
    drop(small_dir, tmp_path, "alpha", 1)
    snapshot = ModelRegistry(tmp_path, default_model="missing").refresh()
    with pytest.raises(ModelNotFound, match="no model named 'missing'"):
        snapshot.get()


def test_unsafe_or_irrelevant_entries_are_skipped(small_dir: Path, tmp_path: Path) -> None:
    good = drop(small_dir, tmp_path, "iris", 1)
    for name, version in [
        ("iris", ".2"),
        ("iris", "v3"),
        ("iris", "1.5"),
        ("iris", "-4"),
        (".hidden", "1"),
        ("bad name", "1"),
        ("-x", "1"),
        ("_x", "1"),
        ("ïris", "1"),
        ("x" * 65, "1"),
    ]:
        drop(small_dir, tmp_path, name, version)
    (tmp_path / "iris" / "6").mkdir()  # no manifest
    (tmp_path / "iris" / "7").write_text("a file, not a directory", encoding="utf-8")
    (tmp_path / "README.md").write_text("not a model", encoding="utf-8")
    assert discover(tmp_path) == {("iris", 1): good}
    snapshot = ModelRegistry(tmp_path).refresh()
    assert [(row["name"], row["version"]) for row in snapshot.statuses()] == [("iris", "1")]


def test_longest_valid_name_is_served(small_dir: Path, tmp_path: Path) -> None:
    name = "x" * 64
    drop(small_dir, tmp_path, name, 1)
    assert list(discover(tmp_path)) == [(name, 1)]


@pytest.mark.parametrize(
    "version_dir",
    ["0", "01", "٣", "²", "1234567890"],
    ids=["zero", "leading-zero", "arabic-indic", "superscript", "ten-digits"],
)
def test_version_dirs_that_parse_version_rejects_are_skipped(
    small_dir: Path, tmp_path: Path, version_dir: str
) -> None:
    good = drop(small_dir, tmp_path, "iris", 1)
    drop(small_dir, tmp_path, "iris", version_dir)
    assert discover(tmp_path) == {("iris", 1): good}


def test_symlink_leading_outside_the_root_is_skipped(
    small_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    good = drop(small_dir, root, "iris", 1)
    drop(small_dir, outside, "ext", 1)
    (root / "iris" / "2").symlink_to(outside / "ext" / "1", target_is_directory=True)
    (root / "ext").symlink_to(outside / "ext", target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger=registry_module.__name__):
        assert discover(root) == {("iris", 1): good}
    assert "leads outside" in caplog.text


def test_symlink_inside_the_root_is_served(small_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / ".store" / "iris-2"
    shutil.copytree(small_dir, store)
    drop(small_dir, tmp_path, "iris", 1)
    (tmp_path / "iris" / "2").symlink_to(Path("..") / ".store" / "iris-2")
    assert discover(tmp_path)[("iris", 2)] == tmp_path / "iris" / "2"
    assert ModelRegistry(tmp_path).refresh().get().version == 2


# --- names and versions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["iris", "a", "A1", "9lives", "model.v2", "my_model-2", "x" * 64],
    ids=["word", "one-char", "mixed-case", "digit-first", "dot", "underscore-dash", "64-chars"],
)
def test_valid_names(name: str) -> None:
    validate_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "../etc", "..", "a/b", "a\\b", ".hidden", "-x", "_x", "bad name", "iris\n", "a\x00",
     "ïris", "x" * 65],
    ids=["empty", "traversal", "dotdot", "slash", "backslash", "dot-first", "dash-first",
         "underscore-first", "space", "newline", "nul", "non-ascii", "65-chars"],
)  # fmt: skip
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidInput, match="model name"):
        validate_name(name)


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1", 1), (1, 1), ("42", 42), ("01", 1), ("999999999", 999_999_999)],
    ids=["one", "int", "two-digits", "leading-zero", "nine-digits"],
)
def test_valid_versions(version: str | int, expected: int) -> None:
    assert parse_version(version) == expected


@pytest.mark.parametrize(
    "version",
    ["0", 0, "-1", -1, "1.5", "", "٣", "²", "1e3", " 1", "1 ", "+1", "abc", "1234567890"],
    ids=["zero", "int-zero", "negative", "int-negative", "decimal", "empty", "arabic-indic",
         "superscript", "exponent", "leading-space", "trailing-space", "plus", "word",
         "ten-digits"],
)  # fmt: skip
def test_invalid_versions(version: str | int) -> None:
    with pytest.raises(InvalidInput, match="model version"):
        parse_version(version)


# --- hot reload -------------------------------------------------------------------------------


def test_new_version_becomes_the_default_and_the_old_stays(small_dir: Path, tmp_path: Path) -> None:
    drop(small_dir, tmp_path, "iris", 1)
    registry = ModelRegistry(tmp_path)
    old = registry.refresh()
    drop(small_dir, tmp_path, "iris", 2)
    new = registry.refresh()
    assert new is registry.snapshot and new is not old
    assert new.get().version == 2
    assert new.get("iris", "1") is old.get()  # not reloaded: the same loaded model
    # the held snapshot is untouched and still answers with what it had
    assert old.get().version == 1
    assert sorted(old.models["iris"]) == [1]
    with pytest.raises(ModelNotFound):
        old.get("iris", 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        old.default_name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        (tamper, "SHA-256"),
        (wrong_smoke_labels, "smoke test"),
        (one_feature_fewer, "the manifest lists 3 features, the"),
    ],
    ids=["tampered", "smoke-test", "feature-count"],
)
def test_a_failing_new_version_is_recorded_and_not_served(
    small_dir: Path, tmp_path: Path, breakage: Callable[[Path], None], reason: str
) -> None:
    drop(small_dir, tmp_path, "iris", 1)
    drop(small_dir, tmp_path, "iris", 2)
    registry = ModelRegistry(tmp_path)
    registry.refresh()
    staging = tmp_path / ".build-3"
    shutil.copytree(small_dir, staging)
    breakage(staging)
    os.replace(staging, tmp_path / "iris" / "3")
    snapshot = registry.refresh()
    assert list(snapshot.failures) == [("iris", 3)]
    assert reason in snapshot.failures[("iris", 3)]
    assert snapshot.get().version == 2
    assert sorted(snapshot.models["iris"]) == [1, 2]
    assert snapshot.ready  # iris still has versions serving
    with pytest.raises(ModelNotReady, match="version 3 failed to load") as raised:
        snapshot.get("iris", "3")
    assert reason in raised.value.message


def test_a_failed_version_is_not_retried_until_its_files_change(
    small_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Path] = []
    real_admit = admission.admit

    def counting_admit(path: Path, runtime: str = "auto", **options: Any) -> Runtime:
        loads.append(path)
        return real_admit(path, runtime, **options)

    monkeypatch.setattr(registry_module, "admit", counting_admit)
    drop(small_dir, tmp_path, "iris", 1)
    broken = drop(small_dir, tmp_path, "iris", 2)
    tamper(broken)
    registry = ModelRegistry(tmp_path)
    for _ in range(3):
        snapshot = registry.refresh()
        assert ("iris", 2) in snapshot.failures
        assert snapshot.get().version == 1
    assert sorted(loads) == [tmp_path / "iris" / "1", broken]  # each loaded exactly once

    shutil.rmtree(broken)
    drop(small_dir, tmp_path, "iris", 2)  # fixed
    snapshot = registry.refresh()
    assert loads.count(broken) == 2
    assert not snapshot.failures
    assert snapshot.get().version == 2
    registry.refresh()
    assert len(loads) == 3


def test_a_served_version_broken_in_place_keeps_serving(small_dir: Path, tmp_path: Path) -> None:
    version_dir = drop(small_dir, tmp_path, "iris", 1)
    registry = ModelRegistry(tmp_path)
    before = registry.refresh().get()
    staging = tmp_path / ".broken"
    shutil.copytree(small_dir, staging)
    tamper(staging)
    shutil.rmtree(version_dir)
    os.replace(staging, version_dir)
    snapshot = registry.refresh()
    assert snapshot.get() is before  # the model loaded earlier still answers
    assert "SHA-256" in snapshot.failures[("iris", 1)]
    assert [(row["version"], row["state"]) for row in snapshot.statuses()] == [
        ("1", "READY"),
        ("1", "UNAVAILABLE"),
    ]


def test_removing_a_version_drops_it(small_dir: Path, tmp_path: Path) -> None:
    drop(small_dir, tmp_path, "iris", 1)
    drop(small_dir, tmp_path, "iris", 2)
    tamper(drop(small_dir, tmp_path, "iris", 3))
    registry = ModelRegistry(tmp_path)
    assert registry.refresh().get().version == 2
    shutil.rmtree(tmp_path / "iris" / "2")
    shutil.rmtree(tmp_path / "iris" / "3")
    snapshot = registry.refresh()
    assert snapshot.get().version == 1
    assert not snapshot.failures
    with pytest.raises(ModelNotFound, match="no version 2"):
        snapshot.get("iris", 2)


def test_a_vanished_root_keeps_serving_and_says_why(small_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    drop(small_dir, root, "iris", 1)
    registry = ModelRegistry(root)
    registry.refresh()
    shutil.rmtree(root)
    snapshot = registry.refresh()
    assert snapshot.error is not None and str(root) in snapshot.error
    assert snapshot.get().version == 1


# --- statuses and readiness -------------------------------------------------------------------


def test_statuses_rows(small_dir: Path, reg_dir: Path, tmp_path: Path) -> None:
    drop(small_dir, tmp_path, "iris", 1)
    tamper(drop(small_dir, tmp_path, "iris", 2))
    drop(reg_dir, tmp_path, "reg", 1)
    registry = ModelRegistry(tmp_path)
    snapshot = registry.set_unloaded("reg", True)
    rows = snapshot.statuses()
    assert [{k: v for k, v in row.items() if k != "reason"} for row in rows] == [
        {"name": "iris", "version": "1", "state": "READY"},
        {"name": "iris", "version": "2", "state": "UNAVAILABLE"},
        {"name": "reg", "version": "", "state": "UNLOADED"},
    ]
    assert rows[0]["reason"] == "" and rows[2]["reason"] == ""
    assert "SHA-256" in str(rows[1]["reason"])
    assert snapshot.ready


def test_not_ready_while_a_name_has_no_loadable_version(
    small_dir: Path, reg_dir: Path, tmp_path: Path
) -> None:
    drop(small_dir, tmp_path, "iris", 1)
    tamper(drop(reg_dir, tmp_path, "reg", 1))
    snapshot = ModelRegistry(tmp_path).refresh()
    assert not snapshot.ready
    assert snapshot.get().name == "iris"
    with pytest.raises(ModelNotReady, match=r"model 'reg' failed to load: .*SHA-256"):
        snapshot.get("reg")


def test_an_empty_snapshot_is_not_ready() -> None:
    snapshot = Snapshot()
    assert not snapshot.ready
    assert snapshot.statuses() == []
    with pytest.raises(ModelNotReady, match="none loaded"):
        snapshot.get()


# --- load / unload ----------------------------------------------------------------------------


def test_unload_is_shared_through_the_state_dir(
    small_dir: Path, reg_dir: Path, tmp_path: Path
) -> None:
    root, state = tmp_path / "root", tmp_path / "state"
    drop(small_dir, root, "iris", 1)
    drop(reg_dir, root, "reg", 1)
    first = ModelRegistry(root, state_dir=state)
    second = ModelRegistry(root, state_dir=state)
    first.refresh()
    assert second.refresh().get("iris").version == 1

    snapshot = first.set_unloaded("iris", True)
    assert (state / UNLOADED_FILE).is_file()
    assert snapshot.unloaded == frozenset({"iris"})
    with pytest.raises(ModelNotReady, match="unloaded"):
        snapshot.get("iris")
    assert snapshot.get("reg").version == 1
    assert second.snapshot.get("iris").version == 1  # until it rescans
    with pytest.raises(ModelNotReady, match="unloaded"):
        second.refresh().get("iris")

    assert first.set_unloaded("iris", False).get("iris").version == 1
    assert second.refresh().get("iris").version == 1


def test_unload_without_a_state_dir_is_per_registry(small_dir: Path, tmp_path: Path) -> None:
    drop(small_dir, tmp_path, "iris", 1)
    first, second = ModelRegistry(tmp_path), ModelRegistry(tmp_path)
    second.refresh()
    with pytest.raises(ModelNotReady, match="unloaded"):
        first.set_unloaded("iris", True).get("iris")
    assert second.refresh().get("iris").version == 1
    assert first.refresh().unloaded == frozenset({"iris"})
    assert first.set_unloaded("iris", False).get().version == 1


@pytest.mark.parametrize(
    ("name", "error"),
    [("nope", ModelNotFound), ("bad name", InvalidInput)],
    ids=["unknown", "malformed"],
)
def test_unload_of_an_unknown_name(
    small_dir: Path, tmp_path: Path, name: str, error: type[Exception]
) -> None:
    drop(small_dir, tmp_path, "iris", 1)
    registry = ModelRegistry(tmp_path, state_dir=tmp_path / ".state")
    with pytest.raises(error):
        registry.set_unloaded(name, True)
    assert not (tmp_path / ".state" / UNLOADED_FILE).exists()


# --- the watcher ------------------------------------------------------------------------------


def test_watcher_picks_up_a_new_version(small_dir: Path, tmp_path: Path) -> None:
    drop(small_dir, tmp_path, "iris", 1)
    registry = ModelRegistry(tmp_path)
    registry.refresh()
    registry.start_watching(0.2)
    registry.start_watching(0.2)  # idempotent in one process
    drop(small_dir, tmp_path, "iris", 2)
    assert wait_for(lambda: registry.snapshot.get().version == 2)


def test_request_refresh_wakes_the_watcher(small_dir: Path, tmp_path: Path) -> None:
    drop(small_dir, tmp_path, "iris", 1)
    registry = ModelRegistry(tmp_path)
    registry.refresh()
    registry.start_watching(60)  # would not rescan on its own during this test
    drop(small_dir, tmp_path, "iris", 2)
    time.sleep(0.1)
    assert registry.snapshot.get().version == 1
    registry.request_refresh()
    assert wait_for(lambda: registry.snapshot.get().version == 2)


@pytest.mark.parametrize("interval", [0, -1.0], ids=["zero", "negative"])
def test_watching_at_interval_zero_starts_nothing(tmp_path: Path, interval: float) -> None:
    before = watcher_threads()
    ModelRegistry(tmp_path).start_watching(interval)
    assert watcher_threads() == before


# --- nothing to serve -------------------------------------------------------------------------


def test_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "nothing"
    snapshot = ModelRegistry(root).refresh()
    assert snapshot.error is not None and str(root) in snapshot.error
    assert not snapshot.ready
    with pytest.raises(ModelNotReady, match="no model is ready") as raised:
        snapshot.get()
    assert str(root) in raised.value.message


def test_empty_root(tmp_path: Path) -> None:
    snapshot = ModelRegistry(tmp_path).refresh()
    assert snapshot.error == f"{tmp_path}: no model artifacts found"
    assert not snapshot.ready
    with pytest.raises(ModelNotReady, match="no model artifacts"):
        snapshot.get()
