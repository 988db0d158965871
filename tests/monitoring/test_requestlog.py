"""The request log in one process: typed columns, rolling, sampling, the disk budget, drops."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from flask import Flask

from census import ROW
from flaskserve.app import create_app
from flaskserve.cli import main
from flaskserve.metrics import Metrics
from flaskserve.monitoring import Observation
from flaskserve.monitoring.requestlog import RequestLog
from flaskserve.runtime.registry import ModelRegistry, ServedModel
from flaskserve.settings import Settings

FLOWER = [5.9, 3.0, 5.1, 1.8]


@pytest.fixture(scope="module")
def iris(model_dir: Path) -> ServedModel:
    return ModelRegistry(model_dir).refresh().get()


@pytest.fixture()
def opened(tmp_path: Path) -> Iterator[list[RequestLog]]:
    """Request logs a test opens; each is closed (its thread stopped) after the test."""
    logs: list[RequestLog] = []
    yield logs
    for log in logs:
        log.close()


def _open(opened: list[RequestLog], metrics: Metrics, **settings: object) -> RequestLog:
    log = RequestLog(Settings(**settings), metrics, poll_seconds=0.02)  # type: ignore[arg-type]
    opened.append(log)
    return log


def _observe(
    log: RequestLog, model: ServedModel, rows: int, request_id: str = "r", at: float = 1e9
) -> None:
    inputs = np.array([FLOWER] * rows)
    log.observe(Observation(model, inputs, model.runtime.predict(inputs), request_id, "/p", at))


def _request_log(app: Flask) -> RequestLog:
    (log,) = (o for o in app.extensions["flaskserve"].observers if isinstance(o, RequestLog))
    return log


def _files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.parquet"), key=lambda p: p.name)


def _dropped(metrics: Metrics, reason: str) -> float:
    text = metrics.render()[0].decode()
    line = f'flaskserve_log_dropped_total{{reason="{reason}"}} '
    return float(text.split(line, 1)[1].split()[0])


def test_typed_columns_of_a_typed_model(census_dir: Path, tmp_path: Path) -> None:
    """Each feature its own type, missing cells null, probabilities null where not asked."""
    app = create_app(Settings(model_dir=census_dir, runtime="sklearn", log_dir=tmp_path))
    client = app.test_client()
    gap = {**ROW, "workclass": None}
    asked = client.post("/predict?proba=true", json=[ROW, gap], headers={"X-Request-ID": "a-1"})
    plain = client.post("/predict", json=[gap], headers={"X-Request-ID": "a-2"})
    assert asked.status_code == plain.status_code == 200
    _request_log(app).close()

    (path,) = _files(tmp_path)
    table = pq.read_table(path)
    types = {name: str(table.schema.field(name).type) for name in table.schema.names}
    assert types == {
        **{"age": "int64", "workclass": "string", "education": "string", "sex": "string"},
        **{"hours_per_week": "double", "capital_gain": "double", "prediction": "string"},
        **{"proba_<=50K": "double", "proba_>50K": "double", "model": "string"},
        **{"version": "int64", "request_id": "string", "row": "int64", "endpoint": "string"},
        "time": "timestamp[us, tz=UTC]",
    }
    answers: list[dict[str, Any]] = [asked.json, plain.json]  # type: ignore[list-item]
    frame = pd.read_parquet(tmp_path)  # the whole directory, as a reader would
    assert frame["request_id"].tolist() == ["a-1", "a-1", "a-2"]
    assert frame["row"].tolist() == [0, 1, 0]
    assert frame["workclass"].isna().tolist() == [False, True, True]
    assert frame["hours_per_week"].isna().all()  # ROW's is missing
    assert frame["prediction"].tolist() == answers[0]["result"] + answers[1]["result"]
    assert frame["proba_>50K"].tolist()[:2] == [p[1] for p in answers[0]["probabilities"]]
    assert frame["proba_>50K"].isna().tolist() == [False, False, True]
    assert set(frame["model"]) == {"census"} and set(frame["endpoint"]) == {"/predict"}


def test_flaskserve_batch_scores_a_log_file(census_dir: Path, tmp_path: Path) -> None:
    app = create_app(Settings(model_dir=census_dir, runtime="sklearn", log_dir=tmp_path / "log"))
    answer = app.test_client().post("/predict", json=[ROW, {**ROW, "sex": "Female"}])
    _request_log(app).close()
    (path,) = _files(tmp_path / "log")

    result = CliRunner().invoke(
        main, ["batch", str(census_dir), str(path), "-o", str(tmp_path / "out.parquet")]
    )

    assert result.exit_code == 0, result.output
    scored = pq.read_table(tmp_path / "out.parquet").column("prediction").to_pylist()
    assert scored == answer.json["result"]  # type: ignore[index]


def test_files_roll_by_rows_keeping_requests_whole(
    iris: ServedModel, tmp_path: Path, opened: list[RequestLog]
) -> None:
    log = _open(opened, Metrics(), log_dir=tmp_path, log_roll_rows=4)
    for rows in (1, 2, 1, 3, 2, 1):
        _observe(log, iris, rows)
    log.close()

    sizes = [pq.read_metadata(p).num_rows for p in _files(tmp_path)]
    assert sizes == [4, 5, 1]  # the second file rolls at the request that passes 4 rows
    assert len({p.name for p in _files(tmp_path)}) == 3


def test_files_roll_by_time_after_their_first_row(
    iris: ServedModel, tmp_path: Path, opened: list[RequestLog]
) -> None:
    log = _open(opened, Metrics(), log_dir=tmp_path, log_roll_seconds=0.2)
    _observe(log, iris, 1)
    deadline = time.monotonic() + 5
    while not _files(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    (path,) = _files(tmp_path)  # written while the log is open, without a close
    assert pq.read_metadata(path).num_rows == 1


def test_sampling_keeps_whole_requests(
    iris: ServedModel, tmp_path: Path, opened: list[RequestLog]
) -> None:
    random.seed(18)
    log = _open(opened, Metrics(), log_dir=tmp_path, log_sample=0.25)
    for i in range(400):
        _observe(log, iris, 3, request_id=f"r{i}")
    log.close()

    frame = pd.read_parquet(tmp_path)
    per_request = frame.groupby("request_id").size()
    assert set(per_request) == {3}  # a request is kept with all its rows, or not at all
    assert 60 <= len(per_request) <= 140  # 100 expected; 4 standard deviations either way


def test_the_oldest_files_go_first_across_workers(
    iris: ServedModel, tmp_path: Path, opened: list[RequestLog]
) -> None:
    older = tmp_path / "other" / "20000101T000000.000000Z-1-000001.parquet"
    older.parent.mkdir()
    pq.write_table(pa.table({"x": list(range(1000))}), older)  # another worker's, long ago
    log = _open(opened, Metrics(), log_dir=tmp_path, log_roll_rows=1, log_max_bytes=20_000)
    for i in range(12):
        _observe(log, iris, 1, request_id=f"r{i}", at=1e9 + i)  # a file each (one row)
    log.close()

    kept = _files(tmp_path)
    assert older not in kept
    assert sum(p.stat().st_size for p in kept) <= 20_000
    ids = pd.concat(pd.read_parquet(p) for p in kept)["request_id"].tolist()
    assert ids == [f"r{i}" for i in range(12 - len(kept), 12)]  # the newest, in order


def test_a_full_queue_drops_and_counts_without_blocking(
    iris: ServedModel, tmp_path: Path, opened: list[RequestLog]
) -> None:
    metrics = Metrics()
    log = RequestLog(Settings(log_dir=tmp_path), metrics, queue_rows=5, poll_seconds=60)
    opened.append(log)
    started = time.perf_counter()
    for _ in range(8):
        _observe(log, iris, 1)
    assert time.perf_counter() - started < 1
    log.close()  # the writer's last cycle writes the queue and counts the drops

    assert pd.read_parquet(tmp_path).shape[0] == 5
    assert _dropped(metrics, "queue_full") == 3
    assert _dropped(metrics, "write_failed") == 0


def test_a_failed_write_drops_and_counts(
    iris: ServedModel, tmp_path: Path, opened: list[RequestLog]
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    metrics = Metrics()
    log = _open(opened, metrics, log_dir=blocked)
    _observe(log, iris, 2)
    log.close()

    assert _dropped(metrics, "write_failed") == 2
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(".*"))
