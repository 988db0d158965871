"""The request log and shadows in a monitor process beside the worker: the batches it is
sent, and a real child process writing the log and the comparison."""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import iris_with_challenger
from sklearn.datasets import load_iris

from flaskserve.metrics import Metrics
from flaskserve.monitoring import in_own_process
from flaskserve.monitoring.base import Answers, Observation
from flaskserve.monitoring.process import MonitorProcess
from flaskserve.monitoring.process_main import Monitors
from flaskserve.monitoring.process_wire import (
    LOG,
    SHADOW,
    Pending,
    decode,
    decode_settings,
    encode,
    encode_settings,
    read_frame,
    write_frame,
)
from flaskserve.monitoring.shadow import _chunks, start_routing
from flaskserve.monitoring.shadow_report import read_tallies
from flaskserve.runtime.registry import ModelRegistry, ServedModel
from flaskserve.schema import Table
from flaskserve.settings import Settings

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def repository(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris 1 (the tutorial forest) and iris 2 (five trees, another seed)."""
    return iris_with_challenger(model_dir, tmp_path_factory.mktemp("process") / "models")


def _served(root: Path, **settings: Any) -> tuple[ModelRegistry, Settings]:
    config = Settings(model_dir=root, **settings)
    registry = ModelRegistry(root, state_dir=config.state_dir)
    registry.refresh()
    return registry, config


def _answer(
    model: ServedModel, rows: np.ndarray | Table, index: int, *, proba: bool
) -> Observation:
    prediction = model.runtime.predict(rows, proba=proba)
    return Observation(model, rows, prediction, f"r{index}", "/predict", 1_700_000_000.0 + index)


def _requests(answers: Answers) -> list[dict[str, Any]]:
    """Each request of *answers* on its own, to compare with what was sent."""
    found, start = [], 0
    for i, size in enumerate(answers.sizes.tolist()):
        rows = np.arange(start, start + size)
        start += size
        inputs = answers.inputs
        found.append(
            {
                "id": answers.request_ids[i],
                "endpoint": answers.endpoints[i],
                "time": float(answers.times[i]),
                "inputs": inputs.take(rows).to_frame()
                if isinstance(inputs, Table)
                else inputs[rows],
                "predictions": answers.predictions[rows],
                "probabilities": None
                if answers.probabilities is None
                else answers.probabilities[rows],
                "scores": None if answers.scores is None else answers.scores[rows],
            }
        )
    return found


def _as_sent(seen: Observation) -> dict[str, Any]:
    inputs = seen.inputs
    return {
        "id": seen.request_id,
        "endpoint": seen.endpoint,
        "time": seen.time,
        "inputs": inputs.to_frame() if isinstance(inputs, Table) else inputs,
        "predictions": seen.prediction.predictions,
        "probabilities": seen.prediction.probabilities,
        "scores": seen.prediction.scores,
    }


def _same(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    for name, value in ours.items():
        other = theirs[name]
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(value, other)
        elif isinstance(value, np.ndarray) or value is None:
            assert (value is None) == (other is None), name
            assert value is None or np.array_equal(value, other), name
        else:
            assert value == other, name


def test_a_batch_of_mixed_answers_comes_back_as_it_was_sent(repository: Path) -> None:
    registry, _ = _served(repository)
    model = registry.snapshot.get("iris", 1)
    rows = load_iris().data
    sent, start = [], 0
    for i, size in enumerate([1, 3, 1, 2, 5, 1]):  # some asked for probabilities, some not
        seen = _answer(model, rows[start : start + size], i, proba=i % 2 == 0)
        sent.append((seen, LOG | SHADOW if i % 3 else LOG))
        start += size
    batch = decode(encode(Pending.of(sent).groups(), {("iris", 2, 0.0): 7}))

    assert batch.shadow_dropped == {("iris", 2, 0.0): 7}
    assert len(batch.groups) == 2  # with probabilities, and without
    back = {r["id"]: r for group in batch.groups for r in _requests(group.answers)}
    for seen, _ in sent:
        _same(_as_sent(seen), back[seen.request_id])
    for group in batch.groups:  # each use gets the requests sent for it, and only those
        for use in (LOG, SHADOW):
            wanted = {seen.request_id for seen, uses in sent if uses & use}
            chosen = group.chosen(use)
            ids = set() if chosen is None else set(chosen.request_ids)
            assert ids == wanted & set(group.answers.request_ids)
            for request in [] if chosen is None else _requests(chosen):
                _same(request, back[request["id"]])


def test_a_long_batch_comes_back_whole_and_in_order(repository: Path) -> None:
    """One version's answers, queued one by one in columns, travel as one group, in order."""
    registry, _ = _served(repository)
    model = registry.snapshot.get("iris", 1)
    rows = load_iris().data
    sent = [
        (_answer(model, rows[i % 150 : i % 150 + 1], i, proba=False), LOG if i % 3 else SHADOW)
        for i in range(261)
    ]
    (group,) = decode(encode(Pending.of(sent).groups(), {})).groups
    assert group.answers.request_ids == tuple(seen.request_id for seen, _ in sent)
    assert group.uses.tolist() == [uses for _, uses in sent]
    for (seen, _), back in zip(sent, _requests(group.answers), strict=True):
        _same(_as_sent(seen), back)


def test_typed_rows_travel_column_by_column(census_dir: Path, census: Any) -> None:
    registry, _ = _served(census_dir)
    model = registry.snapshot.get()
    frame = census[0].head(6)
    features = model.runtime.manifest.features
    table = Table(features, tuple(frame[f.name].to_numpy() for f in features))
    sent = [
        (_answer(model, table.take(np.arange(i, i + 2)), i, proba=False), LOG) for i in (0, 2, 4)
    ]
    (group,) = decode(encode(Pending.of(sent).groups(), {})).groups
    back = {r["id"]: r for r in _requests(group.answers)}
    for seen, _ in sent:
        _same(_as_sent(seen), back[seen.request_id])


def test_answers_are_cut_between_requests_for_the_challenger(repository: Path) -> None:
    registry, _ = _served(repository)
    model = registry.snapshot.get("iris", 1)
    rows = load_iris().data
    sizes, seen, start = [3, 300, 200, 10, 700, 1], [], 0
    for i, size in enumerate(sizes):
        seen.append(_answer(model, rows[np.arange(start, start + size) % 150], i, proba=False))
        start += size
    parts = list(_chunks(Answers.of(seen), 512))
    assert [p.sizes.tolist() for p in parts] == [[3, 300, 200], [10], [700], [1]]
    assert [p.request_ids for p in parts] == [("r0", "r1", "r2"), ("r3",), ("r4",), ("r5",)]
    whole = Answers.of(seen).predictions  # a request larger than 512 rows goes alone
    assert np.array_equal(np.concatenate([p.predictions for p in parts]), whole)


def test_head_cuts_as_choosing_the_first_requests_does(
    repository: Path, census_dir: Path, census: Any
) -> None:
    """``head`` slices (views, no per-request step); ``requests`` picks by mask: the same cut,
    for rows in a matrix and typed rows, with probabilities."""
    iris = _served(repository)[0].snapshot.get("iris", 1)
    adult = _served(census_dir)[0].snapshot.get()
    frame = census[0].head(12)
    typed = Table(
        adult.runtime.manifest.features,
        tuple(frame[f.name].to_numpy() for f in adult.runtime.manifest.features),
    )
    for model, rows in ((iris, load_iris().data[:12]), (adult, typed)):
        sizes, seen, start = [1, 3, 2, 4, 2], [], 0
        for i, size in enumerate(sizes):
            part = (
                rows[start : start + size]
                if isinstance(rows, np.ndarray)
                else rows.take(np.arange(start, start + size))
            )
            seen.append(_answer(model, part, i, proba=True))
            start += size
        answers = Answers.of(seen)
        for cut in (1, 2, 4):
            first, rest = answers.head(cut)
            chosen = np.arange(len(sizes)) < cut
            assert rest is not None
            for ours, theirs in (
                (first, answers.requests(chosen)),
                (rest, answers.requests(~chosen)),
            ):
                assert ours.request_ids == theirs.request_ids
                for got, want in zip(_requests(ours), _requests(theirs), strict=True):
                    _same(got, want)
        whole, none = answers.head(len(sizes))
        assert whole is answers and none is None


def test_a_frame_cut_short_reads_as_the_end() -> None:
    stream = io.BytesIO()
    write_frame(stream, b"whole")
    write_frame(stream, b"cut short")
    data = stream.getvalue()
    reader = io.BytesIO(data[:-3])
    assert read_frame(reader) == b"whole"
    assert read_frame(reader) is None
    assert read_frame(io.BytesIO(b"")) is None


def test_only_a_served_process_moves_the_monitors_out(tmp_path: Path) -> None:
    served = Metrics()
    served.multiprocess = True
    assert in_own_process(Settings(state_dir=tmp_path), served)
    assert not in_own_process(Settings(), served)  # nowhere to share what the child writes
    assert not in_own_process(Settings(state_dir=tmp_path), Metrics())


def _rows_logged(root: Path) -> list[str]:
    files = list(root.glob("iris/*.parquet"))
    if not files:
        return []
    ids: list[str] = pd.read_parquet(root / "iris", columns=["request_id"])["request_id"].tolist()
    return ids


def test_a_monitor_process_writes_the_log_and_the_comparison(
    repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = Metrics()  # this process's: the child counts into the multiprocess files
    _child_metrics(tmp_path, monkeypatch)
    registry, settings = _served(
        repository, state_dir=tmp_path / "state", log_dir=tmp_path / "log", shadow="iris=2"
    )
    start_routing(settings, registry)
    champion = registry.snapshot.get("iris")
    assert champion.version == 1  # the challenger answers no one
    link = MonitorProcess(settings, registry, metrics, send_seconds=0.05)
    rows = load_iris().data
    before = set(_children_of_this_process())  # a test runner may have others
    for i in range(0, 150, 3):
        link.observe(_answer(champion, rows[i : i + 3], i, proba=False))
    link.close()  # sends what it holds, and waits for the child to write it all

    assert set(_children_of_this_process()) <= before  # it ended with the pipe
    assert sorted(_rows_logged(tmp_path / "log")) == sorted(
        f"r{i}" for i in range(0, 150, 3) for _ in range(3)
    )
    tally, workers = read_tallies(tmp_path / "state", ("iris", 2, 0.0))
    found = registry.snapshot.challenger("iris")
    assert found is not None
    challenger = found[0]
    ours = champion.runtime.predict(rows).predictions
    theirs = challenger.runtime.predict(rows).predictions
    assert (workers, tally.rows, tally.requests) == (1, 150, 50)
    assert tally.agree == int((ours == theirs).sum())  # what both models give on these rows


def _child_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitor process counts into multiprocess files, as under ``flaskserve serve``."""
    (tmp_path / "metrics").mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))


def _children_of_this_process() -> list[int]:
    pid = os.getpid()
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return sorted(found)


def test_a_monitor_process_that_dies_is_started_again_and_its_loss_counted(
    repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = Metrics()
    _child_metrics(tmp_path, monkeypatch)
    monkeypatch.setattr("flaskserve.monitoring.process.RESTART_SECONDS", 0.0)
    registry, settings = _served(repository, state_dir=tmp_path / "state", log_dir=tmp_path / "log")
    model = registry.snapshot.get("iris")
    link = MonitorProcess(settings, registry, metrics, send_seconds=0.05)
    rows = load_iris().data
    others = set(_children_of_this_process())  # a test runner may have children of its own
    link.observe(_answer(model, rows[:1], 0, proba=False))
    deadline = time.monotonic() + 30
    while not (started := set(_children_of_this_process()) - others):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (first,) = started
    os.kill(first, signal.SIGKILL)  # the link reaps it when a write fails
    lost = 0
    for i in range(1, 400):  # until a write fails, and then a new child takes the rest
        link.observe(_answer(model, rows[i % 150 : i % 150 + 1], i, proba=False))
        time.sleep(0.005)
        lost = metrics.log_dropped.labels("write_failed")._value.get()
        if lost and set(_children_of_this_process()) - others - {first}:
            break
    after = [f"r{i}" for i in range(1000, 1010)]
    for i in range(1000, 1010):
        link.observe(_answer(model, rows[:1], i, proba=False))
    link.close()

    assert lost >= 1
    logged = _rows_logged(tmp_path / "log")
    assert set(after) <= set(logged)  # the new child took everything after


def test_a_frame_that_cannot_be_sent_counts_its_rows_and_requests_dropped(
    repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log's rows and the shadow's requests of a lost frame are counted, each once; the
    shadow's go to the monitor process with the next frame."""
    metrics = Metrics()
    registry, settings = _served(
        repository, state_dir=tmp_path / "state", log_dir=tmp_path / "log", shadow="iris=2@0.5"
    )
    start_routing(settings, registry)
    champion = registry.snapshot.get("iris")
    link = MonitorProcess(settings, registry, metrics)
    monkeypatch.setattr(link, "_start", lambda: None)  # no thread: the test sends
    monkeypatch.setattr(link, "_send", lambda payload: False)  # the child is gone
    rows = load_iris().data
    for i in range(40):  # 1-3 rows each; half of them, about, drawn for the shadow
        link.observe(_answer(champion, rows[i : i + 1 + i % 3], i, proba=i % 2 == 0))
    assert not link._dropped  # nothing dropped yet
    drawn = sum(int(np.count_nonzero(g.uses & SHADOW)) for g in link._pending.groups())
    link._send_queued()

    logged = sum(1 + i % 3 for i in range(40))
    assert metrics.log_dropped.labels("write_failed")._value.get() == logged
    assert 0 < drawn < 40
    (key,) = link._dropped  # reported with the next frame
    assert key[:2] == ("iris", 2) and link._dropped[key] == drawn
    assert metrics.shadow_dropped.labels("iris", "2")._value.get() == drawn


def test_answers_of_a_version_the_monitor_process_lacks_are_counted_lost(
    repository: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        model_dir=repository, state_dir=tmp_path / "state", log_dir=tmp_path / "log"
    )
    monitors = Monitors(settings)
    model = monitors._registry.snapshot.get("iris", 1)
    rows = load_iris().data
    known = [(_answer(model, rows[:2], 0, proba=False), LOG)]
    unknown = [(_answer(model, rows[2:5], 1, proba=True), LOG)]
    batch = decode(encode(Pending.of(known + unknown).groups(), {}))
    gone = next(g for g in batch.groups if g.answers.request_ids == ("r1",))
    gone.version = 9  # unloaded here, say, before this process took the batch
    monitors.take(batch)
    monitors.close()

    assert monitors._metrics.log_dropped.labels("write_failed")._value.get() == 3
    assert "3 rows of 'iris' version 9 not monitored" in caplog.text
    assert _rows_logged(tmp_path / "log") == ["r0", "r0"]  # the rest of the batch is kept


class _Runs:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo ran",))


def test_a_frame_naming_other_code_is_refused_unrun() -> None:
    with pytest.raises(pickle.UnpicklingError, match=r"may not name posix\.system"):
        decode(pickle.dumps(_Runs()))


def test_settings_travel_as_json_and_come_back_equal(tmp_path: Path) -> None:
    settings = Settings(
        model_dir=tmp_path / "models",
        state_dir=tmp_path / "state",
        log_dir=tmp_path / "log",
        log_sample=0.25,
        shadow="iris=2@0.5",
        admin_token="t" * 20,
        monitor_nice=3,
    )
    frame = encode_settings(settings)
    json.loads(frame)  # plain JSON: nothing in it names code
    assert decode_settings(frame) == settings
