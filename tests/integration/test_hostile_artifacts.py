"""Hostile artifacts (docs/reliability.md, promise 2), against real servers.

Each artifact below is the tutorial's model with one thing made hostile: a pickle whose
``__reduce__`` would create a marker directory, under every file name the loader reads
(``model.skops``, ``model.onnx``, ``flaskserve.json``, and a manifest whose ``model_file``
names ``model.pkl``, ``model.joblib``, ``model.pickle`` or ``model``, with a matching
SHA-256 so only the format check stands in the way); a skops file holding an untrusted
function; truncated, empty and random-byte model files with matching hashes; hashes
that do not match; a model that fails its smoke prediction; ``../`` in the manifest; a
version directory that is a symlink out of the repository. Each is refused with its own
message by ``flaskserve serve`` at start-up (exit 2) and as a hot-swap candidate under
load (the old version keeps answering every request), and no marker is ever created.

``tests/test_artifact.py`` and ``tests/runtime/test_registry.py`` check the same refusals
one function at a time; here they go through the CLI, gunicorn and HTTP.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pytest
import requests
import skops.io as sio
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from flaskserve.artifact import MANIFEST_NAME, load_model
from liveserver import LiveServer, free_port, worker_pids

# one xdist worker builds the artifacts and starts the servers once, not each worker
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hostile-artifacts")]
FLASKSERVE = str(Path(sys.executable).with_name("flaskserve"))
ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
ANSWER = {"result": [2]}  # the tutorial's row is a virginica
TIMEOUT = (5.0, 15.0)
UNTRUSTED_FUNCTION = f"{os.system.__module__}.{os.system.__name__}"  # posix.system


class MarkerOnUnpickle:
    """Unpickling this creates *marker* (a directory): a stand-in for a malicious pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.makedirs, (str(self.marker),))


# --- building hostile artifacts ------------------------------------------------------------------


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _read_manifest(artifact: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((artifact / MANIFEST_NAME).read_text(encoding="utf-8"))
    return data


def _write_manifest(artifact: Path, data: dict[str, Any]) -> None:
    (artifact / MANIFEST_NAME).write_text(json.dumps(data), encoding="utf-8")


def _pickled(marker: Path, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    return pickle.dumps(MarkerOnUnpickle(marker), protocol=protocol)


def _joblib_dumped(marker: Path) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(MarkerOnUnpickle(marker), buffer)
    return buffer.getvalue()


def _untrusted_skops(artifact: Path) -> bytes:
    """The artifact's own forest behind a step that calls ``os.system``: a skops file."""
    forest = load_model(artifact).estimator
    payload: bytes = sio.dumps(make_pipeline(FunctionTransformer(func=os.system), forest))
    return payload


def _set_model_file(artifact: Path, name: str, payload: bytes, *, compiled: bool) -> None:
    """*payload* as the model file *name*, with its true SHA-256 in the manifest.

    Without *compiled*, the compiled model goes: the artifact of a model that did not
    compile (a custom estimator, say), which the default runtime loads with skops.
    """
    data = _read_manifest(artifact)
    (artifact / data["model_file"]).unlink()
    (artifact / name).write_bytes(payload)
    data.update(model_file=name, sha256=_sha256(payload))
    if not compiled:
        (artifact / "model.onnx").unlink()
        data["compiled"] = {}
    _write_manifest(artifact, data)


def _set_onnx(artifact: Path, payload: bytes, *, matching: bool = True) -> None:
    data = _read_manifest(artifact)
    (artifact / data["compiled"]["file"]).write_bytes(payload)
    if matching:
        data["compiled"]["sha256"] = _sha256(payload)
    _write_manifest(artifact, data)


def _edit_manifest(artifact: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = _read_manifest(artifact)
    change(data)
    _write_manifest(artifact, data)


def _flip_middle_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    file.write_bytes(bytes(data))


def _wrong_smoke_predictions(data: dict[str, Any]) -> None:
    data["sample"]["predictions"] = [(p + 1) % 3 for p in data["sample"]["predictions"]]


def _pickle_as_manifest(artifact: Path, marker: Path) -> None:
    (artifact / MANIFEST_NAME).write_bytes(_pickled(marker, protocol=0))  # text-like opcodes


def _random_bytes(size: int) -> bytes:
    return random.Random(size).randbytes(size)


Build = Callable[[Path, Path], None]  # (the artifact to make hostile, in place; its marker)


@dataclass(frozen=True)
class Hostile:
    id: str
    build: Build
    reason: str  # what the refusal says, whatever the path before it


def _pickle_as_model_file(name: str, dump: Callable[[Path], bytes] = _pickled) -> Hostile:
    def build(artifact: Path, marker: Path) -> None:
        _set_model_file(artifact, name, dump(marker), compiled=False)

    return Hostile(f"pickle-as-{name}", build, f"{name}: not a readable skops file")


def _skops_with_matching_hash(case_id: str, payload: Callable[[bytes], bytes]) -> Hostile:
    def build(artifact: Path, marker: Path) -> None:
        original = (artifact / "model.skops").read_bytes()
        _set_model_file(artifact, "model.skops", payload(original), compiled=False)

    return Hostile(case_id, build, "model.skops: not a readable skops file")


def _onnx_with_matching_hash(case_id: str, payload: Callable[[bytes], bytes]) -> Hostile:
    def build(artifact: Path, marker: Path) -> None:
        _set_onnx(artifact, payload((artifact / "model.onnx").read_bytes()))

    return Hostile(case_id, build, "model.onnx: not a loadable ONNX model")


HOSTILE: list[Hostile] = [
    _pickle_as_model_file("model.skops"),
    _pickle_as_model_file("model.pkl"),
    _pickle_as_model_file("model.joblib", _joblib_dumped),
    _pickle_as_model_file("model.pickle"),
    _pickle_as_model_file("model"),
    Hostile(
        "pickle-as-model.onnx",
        lambda artifact, marker: _set_onnx(artifact, _pickled(marker)),
        "model.onnx: not a loadable ONNX model",
    ),
    Hostile(
        "pickle-as-manifest", _pickle_as_manifest, f"{MANIFEST_NAME}: not a readable JSON file"
    ),
    Hostile(
        "skops-untrusted-function",
        lambda artifact, marker: _set_model_file(
            artifact, "model.skops", _untrusted_skops(artifact), compiled=False
        ),
        f"model.skops: contains types flaskserve does not trust: {UNTRUSTED_FUNCTION}",
    ),
    _skops_with_matching_hash("skops-truncated", lambda data: data[: len(data) // 2]),
    _skops_with_matching_hash("skops-empty", lambda data: b""),
    _skops_with_matching_hash("skops-random-bytes", lambda data: _random_bytes(len(data))),
    _onnx_with_matching_hash("onnx-truncated", lambda data: data[: len(data) // 2]),
    _onnx_with_matching_hash("onnx-empty", lambda data: b""),
    _onnx_with_matching_hash("onnx-random-bytes", lambda data: _random_bytes(len(data))),
    Hostile(
        "skops-sha256-mismatch",
        lambda artifact, marker: _flip_middle_byte(artifact / "model.skops"),
        "model.skops: SHA-256 mismatch",
    ),
    Hostile(
        "onnx-sha256-mismatch",
        lambda artifact, marker: _flip_middle_byte(artifact / "model.onnx"),
        "model.onnx: SHA-256 mismatch",
    ),
    Hostile(
        "smoke-test-fails",
        lambda artifact, marker: _edit_manifest(artifact, _wrong_smoke_predictions),
        "smoke test failed",
    ),
    Hostile(
        "model-file-dotdot",
        lambda artifact, marker: _edit_manifest(
            artifact, lambda data: data.update(model_file="../1/model.skops")
        ),
        "model_file must be a plain file name",
    ),
]
#: Only where the artifact is the whole repository: in a tree the directory names the model.
NAME_DOTDOT = Hostile(
    "name-dotdot",
    lambda artifact, marker: _edit_manifest(artifact, lambda data: data.update(name="../x")),
    "model name '../x' cannot be served",
)


@dataclass(frozen=True)
class Built:
    """Every hostile artifact, each with its own marker path (none may ever exist)."""

    artifacts: dict[str, Path]
    markers: Path
    outside: Path  # a good artifact outside every repository, for the symlinks

    def no_marker_exists(self) -> bool:
        return not any(self.markers.iterdir())


@pytest.fixture(scope="module")
def built(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("hostile")
    markers = base / "markers"
    markers.mkdir()
    controls = base / "controls"  # the payloads are live: loading them creates their marker
    pickle.loads(_pickled(controls / "pickle"))
    pickle.loads(_pickled(controls / "pickle-protocol-0", protocol=0))
    joblib.load(io.BytesIO(_joblib_dumped(controls / "joblib")))
    assert sorted(p.name for p in controls.iterdir()) == ["joblib", "pickle", "pickle-protocol-0"]
    artifacts: dict[str, Path] = {}
    for case in [*HOSTILE, NAME_DOTDOT]:
        artifact = base / "artifacts" / case.id
        shutil.copytree(model_dir, artifact)
        case.build(artifact, markers / case.id)
        artifacts[case.id] = artifact
    outside = base / "outside" / "iris"
    shutil.copytree(model_dir, outside)
    result = Built(artifacts, markers, outside)
    assert result.no_marker_exists()
    return result


def _publish(source: Path, target: Path) -> None:
    """Copy an artifact in as a deployment should: whole, by one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".incoming-{target.name}"
    shutil.copytree(source, staging, symlinks=True)
    os.replace(staging, target)


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKSERVE_")}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)


# --- at start-up ---------------------------------------------------------------------------------


#: One case of each kind of refusal, started alone. Every case's reason is checked in one
#: start of a repository holding them all (the same admission decides both), where a
#: process each spent a minute of CI on importing the same libraries nineteen times.
SINGLE = ["pickle-as-model.joblib", "pickle-as-manifest", "skops-untrusted-function",
          "onnx-truncated", "skops-sha256-mismatch", "smoke-test-fails"]  # fmt: skip
SINGLE_CASES = [case for case in HOSTILE if case.id in SINGLE] + [NAME_DOTDOT]


@pytest.fixture(scope="module")
def single_starts(built: Built) -> dict[str, subprocess.CompletedProcess[str]]:
    """``flaskserve serve <hostile artifact>`` for each of :data:`SINGLE_CASES`, side by side."""
    assert len(SINGLE_CASES) == len(SINGLE) + 1  # no name in SINGLE misspelt
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKSERVE_")}
    running = {
        case_id: subprocess.Popen(
            [FLASKSERVE, "serve", str(path), "--port", str(free_port()), "--workers", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        for case_id, path in ((case.id, built.artifacts[case.id]) for case in SINGLE_CASES)
    }
    done: dict[str, subprocess.CompletedProcess[str]] = {}
    deadline = time.monotonic() + 60  # a refusal takes ~1 s alone, a few s side by side
    try:
        for case_id, process in running.items():
            try:
                out, err = process.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # it is serving: stop it and its workers
                os.killpg(process.pid, signal.SIGKILL)
                out, err = process.communicate()
            done[case_id] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    finally:
        for process in running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return done


@pytest.mark.parametrize("case", SINGLE_CASES, ids=lambda case: case.id)
def test_start_with_a_hostile_artifact_exits_with_the_reason(
    case: Hostile, built: Built, single_starts: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    done = single_starts[case.id]
    assert done.returncode == 2, done.stderr
    assert "Error: Invalid value for MODEL_DIR" in done.stderr, done.stderr
    assert case.reason in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "Listening at" not in done.stderr  # refused before gunicorn started
    assert built.no_marker_exists()


def test_start_with_only_hostile_versions_exits_naming_each(built: Built, tmp_path: Path) -> None:
    """A repository of hostile versions and none good: exit 2, one line per version."""
    root = tmp_path / "repository"
    for version, case in enumerate(HOSTILE, start=1):
        _publish(built.artifacts[case.id], root / "iris" / str(version))
    done = _run([FLASKSERVE, "serve", str(root), "--port", str(free_port())])
    assert done.returncode == 2, done.stderr
    for version, case in enumerate(HOSTILE, start=1):
        line = f"warning: model 'iris' version {version} will not be served: "
        (found,) = [x for x in done.stderr.splitlines() if x.startswith(line)]
        assert case.reason in found, (case.id, found)
    assert "Error: Invalid value for MODEL_DIR" in done.stderr
    assert "Traceback" not in done.stderr
    assert built.no_marker_exists()


def test_start_with_only_a_symlink_out_of_the_repository_exits(
    built: Built, tmp_path: Path
) -> None:
    """The symlinked version is a good model, but outside the root: it is never loaded."""
    root = tmp_path / "repository"
    (root / "iris").mkdir(parents=True)
    (root / "iris" / "1").symlink_to(built.outside, target_is_directory=True)
    done = _run([FLASKSERVE, "serve", str(root), "--port", str(free_port())])
    assert done.returncode == 2, done.stderr
    assert "no model artifacts found" in done.stderr, done.stderr


def test_start_names_the_symlink_it_refused(built: Built, tmp_path: Path) -> None:
    root = tmp_path / "repository"
    (root / "iris").mkdir(parents=True)
    (root / "iris" / "1").symlink_to(built.outside, target_is_directory=True)
    done = _run([FLASKSERVE, "serve", str(root), "--port", str(free_port())])
    assert done.returncode == 2
    assert "leads outside" in done.stderr, done.stderr


def test_files_symlinked_out_of_the_repository_are_refused(built: Built, tmp_path: Path) -> None:
    version = tmp_path / "repository" / "iris" / "1"
    version.mkdir(parents=True)
    for file in built.outside.iterdir():
        (version / file.name).symlink_to(file)
    report = _inspect(tmp_path / "repository", "auto")
    assert report["models"] == {}, report


# --- a compiled model beside a model file that is not what it claims to be ------------------------


@pytest.fixture(scope="module")
def beside_compiled(
    built: Built, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """Hostile model files that keep the compiled model, which passed its parity gate.

    The default runtime then serves ``model.onnx`` and only hashes the model file; with a
    matching hash in the manifest, nothing reads what the file holds. The start-up check
    of ``flaskserve serve`` as it reports the repository, for each runtime setting.
    """
    root = tmp_path_factory.mktemp("beside-compiled")
    cases: list[tuple[str, Build]] = [
        ("model.skops", lambda a, m: _set_model_file(a, "model.skops", _pickled(m), compiled=True)),
        ("model.pkl", lambda a, m: _set_model_file(a, "model.pkl", _pickled(m), compiled=True)),
        (
            "untrusted",
            lambda a, m: _set_model_file(a, "model.skops", _untrusted_skops(a), compiled=True),
        ),
    ]
    for version, (case_id, build) in enumerate(cases, start=1):
        artifact = root / "iris" / str(version)
        shutil.copytree(model_dir, artifact)
        build(artifact, built.markers / f"beside-compiled-{case_id}")
    return {runtime: _inspect(root, runtime) for runtime in ("auto", "compiled", "sklearn")}


def _inspect(root: Path, runtime: str) -> dict[str, Any]:
    """What ``flaskserve serve`` finds at start-up (its own check, in its own process)."""
    command = [sys.executable, "-m", "flaskserve", "inspect-repository", str(root)]
    done = _run([*command, "--runtime", runtime])
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_model_file_beside_a_compiled_model_is_never_unpickled(
    built: Built, beside_compiled: dict[str, dict[str, Any]]
) -> None:
    assert built.no_marker_exists()
    refused = beside_compiled["sklearn"]  # here the model file is read: refused
    assert refused["models"] == {}
    reasons = {version: why for _, version, why in refused["failures"]}
    assert "model.skops: not a readable skops file" in reasons[1]
    assert "model.pkl: not a readable skops file" in reasons[2]
    assert f"does not trust: {UNTRUSTED_FUNCTION}" in reasons[3]


def test_model_file_beside_a_compiled_model_is_refused(
    beside_compiled: dict[str, dict[str, Any]],
) -> None:
    report = beside_compiled["auto"]
    assert report["models"] == {}, report
    assert len(report["failures"]) == 3, report


# --- as hot-swap candidates, under load ----------------------------------------------------------


@dataclass
class Traffic:
    """Clients posting the tutorial row, and a probe of readiness every 100 ms."""

    url: str
    answers: Counter[str] = field(default_factory=Counter)  # X-Model-Version of right answers
    failures: list[str] = field(default_factory=list)
    ready: Counter[int | str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client) for _ in range(4)]
        self._threads.append(threading.Thread(target=self._probe))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "a client thread hung"

    def _client(self) -> None:
        session = requests.Session()
        for _ in range(20_000):  # bounded even if stop never comes
            if self._stop.is_set():
                break
            try:
                response = session.post(f"{self.url}/predict", json=ROW, timeout=TIMEOUT)
                right = response.status_code == 200 and response.json() == ANSWER
                outcome = response.headers.get("X-Model-Version", "?") if right else None
                detail = f"{response.status_code} {response.text[:200]}"
            except (requests.RequestException, ValueError) as e:
                outcome, detail = None, f"{type(e).__name__}: {e}"[:300]
            with self._lock:
                if outcome is None:
                    self.failures.append(detail)
                else:
                    self.answers[outcome] += 1

    def _probe(self) -> None:
        for _ in range(2_000):
            if self._stop.wait(0.1):
                break
            try:
                status: int | str = requests.get(
                    f"{self.url}/v2/health/ready", timeout=TIMEOUT
                ).status_code
            except requests.RequestException as e:
                status = type(e).__name__
            with self._lock:
                self.ready[status] += 1


def _load_failures(url: str) -> tuple[list[str], dict[str, str]]:
    body = requests.get(f"{url}/v2/models/iris", timeout=TIMEOUT).json()
    failures: dict[str, str] = body.get("parameters", {}).get("load_failures", {})
    return body["versions"], failures


def _wait_for_refusals(server: LiveServer, versions: set[str], deadline_s: float = 60) -> bool:
    """Until every worker has logged the refusal of every version in *versions*."""
    workers = worker_pids(server.process.pid)
    expected = {
        f"[{pid}] [ERROR] model 'iris' version {version} not served"
        for pid in workers
        for version in versions
    }
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        log = server.log.read_text(errors="replace")
        if len(workers) == 2 and all(line in log for line in expected):
            return True
        time.sleep(0.1)
    return False


def _load_failure_metric(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=TIMEOUT).text
    prefix = 'flaskserve_model_load_failures_total{model="iris"} '
    return sum(
        float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix)
    )


def _settle(url: str, versions: set[str]) -> tuple[list[str], dict[str, str], float]:
    """Once each worker has logged its refusals: its snapshot and counter follow at once."""
    deadline = time.monotonic() + 10
    while True:
        served, failures = _load_failures(url)
        metric = _load_failure_metric(url)
        done = set(failures) == versions and metric == 2 * len(versions)
        if done or time.monotonic() > deadline:
            return served, failures, metric
        time.sleep(0.1)


@pytest.fixture()
def repository(model_dir: Path, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "repository"
    _publish(model_dir, root / "iris" / "1")
    yield root


def test_hostile_candidates_under_load_never_serve(
    built: Built, repository: Path, start: Callable[..., LiveServer]
) -> None:
    """Every hostile version published at once beside a good v1, with traffic running."""
    args = [FLASKSERVE, "serve", str(repository), "--port", "{port}", "--workers", "2"]
    server = start(args, env={"FLASKSERVE_POLL_SECONDS": "0.5"})
    versions = {str(v): case for v, case in enumerate(HOSTILE, start=2)}
    symlinked = str(len(HOSTILE) + 2)
    with Traffic(server.url) as traffic:
        time.sleep(1)
        for version, case in versions.items():
            _publish(built.artifacts[case.id], repository / "iris" / version)
        (repository / "iris" / symlinked).symlink_to(built.outside, target_is_directory=True)
        os.kill(server.process.pid, signal.SIGHUP)  # every worker rescans now
        began = time.monotonic()
        assert _wait_for_refusals(server, set(versions)), server.log.read_text()[-3000:]
        settled = time.monotonic() - began
        served, failures, metric = _settle(server.url, set(versions))
        time.sleep(1)  # and the traffic goes on after every refusal
    print(
        f"\nhostile swap: {len(versions)} hostile versions + a symlink out, refused by both"
        f" workers in {settled:.2f} s; {sum(traffic.answers.values())} requests answered by"
        f" versions {dict(traffic.answers)}, {len(traffic.failures)} failed;"
        f" /v2/health/ready {dict(traffic.ready)}"
    )
    assert traffic.failures == []
    assert set(traffic.answers) == {"1"} and traffic.answers["1"] > 50, traffic.answers
    assert set(traffic.ready) == {200}, traffic.ready
    assert set(failures) == set(versions), failures
    for version, case in versions.items():
        assert case.reason in failures[version], (case.id, failures[version])
    assert served == ["1"]  # the symlinked version is not served either
    assert "leads outside" in server.log.read_text()
    assert metric == 2 * len(versions)  # once per worker and version
    assert server.process.poll() is None
    assert built.no_marker_exists()
