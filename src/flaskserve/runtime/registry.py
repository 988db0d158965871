"""Many models and versions from one directory, reloaded without downtime.

A repository is either one artifact directory (served under its manifest's
name and version) or a tree ``<root>/<name>/<version>/`` of artifacts. Each
refresh scans the tree, loads what is new or changed *beside* what is served,
checks it (hash and trusted types, schema, the smoke rows recorded at
training) and then swaps one immutable :class:`Snapshot` in with a single
assignment. A request reads the snapshot once, so it is answered wholly by
the old version or wholly by the new one; a version that fails a check is
never served and the previous one keeps serving.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..admission import admit
from ..artifact import MANIFEST_NAME, read_manifest
from ..errors import ArtifactError, FlaskServeError, InvalidInput, ModelNotFound, ModelNotReady
from .base import Runtime
from .shadows import Routing, RoutingStore, ShadowPlan

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_VERSION_PATTERN = re.compile(r"[1-9][0-9]{0,8}")
UNLOADED_FILE = "unloaded.json"
Key = tuple[str, int]
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class ServedModel:
    """One loaded, checked version, under the name and version it is served as."""

    name: str
    version: int
    runtime: Runtime
    #: the artifact directory it was loaded from (explanations load the model from it)
    path: Path | None = None


@dataclass(frozen=True)
class Snapshot:
    """What is served at one instant; replaced whole, never changed in place."""

    models: Mapping[str, Mapping[int, ServedModel]] = field(default_factory=dict)
    failures: Mapping[Key, str] = field(default_factory=dict)
    unloaded: frozenset[str] = frozenset()
    default_name: str | None = None
    error: str | None = None  # why nothing at all could be found, if so
    #: challengers (never chosen, never answer) and promoted versions (:mod:`.shadows`)
    routing: Routing = field(default_factory=Routing)

    def __post_init__(self) -> None:
        # the version each name answers with, decided once: get() is on every request
        serving: dict[str, int] = {}
        for name, versions in self.models.items():
            plan = self.routing.shadows.get(name)
            answering = [v for v in versions if plan is None or v != plan.version]
            pinned = self.routing.promoted.get(name)
            chosen = pinned if pinned in answering else max(answering, default=None)
            if chosen is not None:
                serving[name] = chosen
        object.__setattr__(self, "_serving", serving)

    def get(self, name: str | None = None, version: str | int | None = None) -> ServedModel:
        """The version asked for, or the highest version of *name* (default: the default model).

        :raises InvalidInput: the name or version is malformed.
        :raises ModelNotFound: no such model or version.
        :raises ModelNotReady: it exists on disk but failed its checks or is unloaded.
        """
        name = name or self.default_name
        if name is None:
            raise ModelNotReady(f"no model is ready: {self.error or 'none loaded'}")
        validate_name(name)
        wanted = parse_version(version) if version is not None else None
        versions = self.models.get(name, {})
        serving: dict[str, int] = self._serving  # type: ignore[attr-defined]
        if wanted is None and name in serving:
            return versions[serving[name]]
        if wanted is not None and wanted in versions and not self.is_shadow(name, wanted):
            return versions[wanted]
        self._raise_missing(name, wanted)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise_missing(self, name: str, version: int | None) -> None:
        if (
            self.error is not None
        ):  # the repository itself is unreadable: say so, not "no such model"
            raise ModelNotReady(f"model {name!r} is not available: {self.error}")
        if name in self.unloaded:
            raise ModelNotReady(f"model {name!r} is unloaded")
        if version is not None and self.is_shadow(name, version):
            raise ModelNotFound(
                f"model {name!r} version {version} is a shadow challenger and answers no client;"
                " promote it to serve it"
            )
        if version is None and name in self.models:
            raise ModelNotReady(f"model {name!r} has only a shadow challenger, which answers none")
        failed = self.failures_of(name)
        if version is not None and version in failed:
            raise ModelNotReady(
                f"model {name!r} version {version} failed to load: {failed[version]}"
            )
        if version is None and failed:
            raise ModelNotReady(f"model {name!r} failed to load: {failed[max(failed)]}")
        if version is not None and (name in self.models or failed):
            raise ModelNotFound(f"model {name!r} has no version {version}")
        raise ModelNotFound(f"no model named {name!r}")

    def is_shadow(self, name: str, version: int) -> bool:
        """*version* of *name* is a shadow challenger: it scores requests but answers none."""
        plan = self.routing.shadows.get(name)
        return plan is not None and plan.version == version

    def challenger(self, name: str) -> tuple[ServedModel, ShadowPlan] | None:
        """The loaded challenger of *name* and its plan, if it has one."""
        plan = self.routing.shadows.get(name)
        model = self.models.get(name, {}).get(plan.version) if plan is not None else None
        return (model, plan) if model is not None and plan is not None else None

    def failures_of(self, name: str) -> dict[int, str]:
        """Why each refused version of *name* was refused, by version."""
        return {v: why for (n, v), why in self.failures.items() if n == name}

    def statuses(self) -> list[dict[str, object]]:
        """Every known version: READY, UNAVAILABLE (with the reason) or UNLOADED."""
        rows: list[dict[str, object]] = []
        for name, versions in sorted(self.models.items()):
            rows += [
                {"name": name, "version": str(v), "state": "READY", "reason": _role(self, name, v)}
                for v in sorted(versions)
            ]
        for (name, version), reason in sorted(self.failures.items()):
            rows.append(
                {"name": name, "version": str(version), "state": "UNAVAILABLE", "reason": reason}
            )
        rows += [
            {"name": n, "version": "", "state": "UNLOADED", "reason": ""}
            for n in sorted(self.unloaded)
        ]
        return rows

    @property
    def ready(self) -> bool:
        """Every model that is not unloaded has at least one version serving."""
        failing = {name for name, _ in self.failures} - set(self.models)
        return bool(self.models) and not failing


def _role(snapshot: Snapshot, name: str, version: int) -> str:
    return "shadow challenger" if snapshot.is_shadow(name, version) else ""


def validate_name(name: str) -> None:
    """:raises InvalidInput: *name* is not a safe model name (it becomes a path)."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"model name {name!r}: expected 1-64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )


def parse_version(version: str | int) -> int:
    """:raises InvalidInput: *version* is not a positive integer."""
    text = str(version)
    if not text.isascii() or not text.isdigit() or int(text) < 1 or len(text) > 9:
        raise InvalidInput(f"model version {text!r}: expected a positive integer")
    return int(text)


@dataclass
class _Entry:
    fingerprint: Fingerprint
    model: ServedModel | None
    failure: str | None = None


class ModelRegistry:
    """Loads, checks and serves every artifact under *root*.

    :param root: one artifact directory, or a ``<name>/<version>/`` tree.
    :param state_dir: where load/unload decisions are shared between worker
        processes; ``None`` keeps them in this process only.
    :param default_model: the model ``/predict`` serves; default: the only
        model, or the first name in sorted order.
    :param runtime: ``auto``, ``sklearn`` or ``compiled`` (see :func:`~flaskserve.admission.admit`).
    :param parallel_rows: see :func:`~flaskserve.admission.admit`.
    :param wrap: applied to each runtime once it passed its checks (e.g. batching).
    :param on_failure: told ``(name, version, reason)`` of each version refused.
    """

    def __init__(
        self,
        root: Path,
        *,
        state_dir: Path | None = None,
        default_model: str | None = None,
        runtime: str = "auto",
        parallel_rows: int = 0,
        wrap: Callable[[Runtime], Runtime] | None = None,
        on_failure: Callable[[str, int, str], None] | None = None,
    ) -> None:
        self.root = root
        self._on_failure = on_failure
        self._runtime = runtime
        self._parallel_rows = parallel_rows
        self._wrap = wrap
        self._state_dir = state_dir
        self._default_model = default_model
        self._entries: dict[Key, _Entry] = {}
        self._local_unloaded: set[str] = set()
        self._lock = threading.Lock()
        self._snapshot = Snapshot()
        self._wake = threading.Event()
        self._watcher_pid: int | None = None
        self.routing = RoutingStore(state_dir)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def refresh(self) -> Snapshot:
        """Scan the repository, load and check what changed, then swap in the result."""
        with self._lock:
            unloaded = self._unloaded()
            try:
                found = discover(self.root)
            except ArtifactError as e:  # keep serving what was good; say what is wrong
                self._snapshot = self._build(unloaded, e.message)
                return self._snapshot
            for key, path in found.items():
                if key[0] not in unloaded:
                    self._update(key, path)
            for key in set(self._entries) - set(found):
                logger.info("model %r version %s removed from %s", key[0], key[1], self.root)
                del self._entries[key]
            for key in [k for k in self._entries if k[0] in unloaded]:
                del self._entries[key]
            missing = None if found else f"{self.root}: no model artifacts found"
            self._snapshot = self._build(unloaded, missing)
            return self._snapshot

    def set_unloaded(self, name: str, unloaded: bool) -> Snapshot:
        """Stop (or resume) serving every version of *name*, in all workers sharing the state dir.

        :raises ModelNotFound: *name* is not in the repository.
        """
        validate_name(name)
        if not any(n == name for n, _ in discover(self.root)):
            raise ModelNotFound(f"no model named {name!r} in the repository")
        names = self._unloaded()
        names = names | {name} if unloaded else names - {name}
        self._store_unloaded(names)
        return self.refresh()

    def change_routing(self, how: Callable[[Routing], Routing]) -> Snapshot:
        """Change which versions are challengers or promoted, for every worker, then refresh."""
        self.routing.change(how)
        return self.refresh()

    def start_watching(self, interval: float) -> None:
        """Refresh every *interval* seconds (and on :meth:`request_refresh`) in a daemon thread.

        Idempotent per process, and safe after a fork: a forked worker starts its own.
        """
        if interval <= 0 or self._watcher_pid == os.getpid():
            return
        self._watcher_pid = os.getpid()
        thread = threading.Thread(
            target=self._watch, args=(interval,), name="flaskserve-watch", daemon=True
        )
        thread.start()

    def request_refresh(self) -> None:
        """Wake the watcher now (safe from a signal handler)."""
        self._wake.set()

    def _watch(self, interval: float) -> None:
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            try:
                self.refresh()
            except Exception:  # a watcher that dies would silently stop all reloads
                logger.exception("refreshing the model repository failed")

    def _update(self, key: Key, path: Path) -> None:
        fingerprint = _fingerprint(path)
        entry = self._entries.get(key)
        if entry is not None and entry.fingerprint == fingerprint:
            return
        try:
            runtime = admit(path, self._runtime, parallel_rows=self._parallel_rows)
            wrapped = self._wrap(runtime) if self._wrap else runtime
            model = ServedModel(key[0], key[1], wrapped, path)
        except FlaskServeError as e:
            logger.error("model %r version %s not served: %s", key[0], key[1], e.message)
            if self._on_failure is not None:
                self._on_failure(key[0], key[1], e.message)
            previous = entry.model if entry is not None else None
            self._entries[key] = _Entry(fingerprint, previous, e.message)
            return
        logger.info("model %r version %s loaded from %s", key[0], key[1], path)
        self._entries[key] = _Entry(fingerprint, model)

    def _build(self, unloaded: frozenset[str], error: str | None) -> Snapshot:
        models: dict[str, dict[int, ServedModel]] = {}
        failures: dict[Key, str] = {}
        for (name, version), entry in sorted(self._entries.items()):
            if entry.model is not None:
                models.setdefault(name, {})[version] = entry.model
            if entry.failure is not None:  # shown even while an earlier load of it still serves
                failures[(name, version)] = entry.failure
        # A configured default stays the default even while unloaded or failing (it then
        # answers 503 with the reason); otherwise serving names come first.
        failing = sorted({n for n, _ in failures} - set(models))
        names = sorted(models) + failing + sorted(unloaded - set(models) - set(failing))
        default = self._default_model or (names[0] if names else None)
        return Snapshot(models, failures, unloaded, default, error, self.routing.read())

    def _unloaded(self) -> frozenset[str]:
        if self._state_dir is None:
            return frozenset(self._local_unloaded)
        try:
            names = json.loads((self._state_dir / UNLOADED_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return frozenset()
        except (OSError, ValueError) as e:
            logger.error("ignoring unreadable %s: %s", UNLOADED_FILE, e)
            return frozenset()
        return frozenset(n for n in names if isinstance(n, str))

    def _store_unloaded(self, names: frozenset[str]) -> None:
        if self._state_dir is None:
            self._local_unloaded = set(names)
            return
        self._state_dir.mkdir(parents=True, exist_ok=True)
        staging = self._state_dir / f".{UNLOADED_FILE}.{os.getpid()}"
        staging.write_text(json.dumps(sorted(names)), encoding="utf-8")
        os.replace(staging, self._state_dir / UNLOADED_FILE)


def discover(root: Path) -> dict[Key, Path]:
    """Find the artifacts under *root*, keyed by (name, version); unsafe entries are skipped."""
    if (root / MANIFEST_NAME).is_file():
        manifest = read_manifest(root)
        if not NAME_PATTERN.fullmatch(manifest.name):
            raise ArtifactError(
                f"{root}: model name {manifest.name!r} cannot be served; save it with a name of"
                " letters, digits, '.', '_' or '-'"
            )
        return {(manifest.name, manifest.version): root}
    if not root.is_dir():
        raise ArtifactError(
            f"{root}: no such directory (expected a model artifact with {MANIFEST_NAME})"
        )
    base = root.resolve()
    found: dict[Key, Path] = {}
    for model_dir in sorted(root.iterdir()):
        if model_dir.name.startswith(".") or not model_dir.is_dir():
            continue
        if not NAME_PATTERN.fullmatch(model_dir.name):
            logger.warning("skipping %s: not a valid model name", model_dir)
            continue
        for version_dir in sorted(model_dir.iterdir()):
            if not _VERSION_PATTERN.fullmatch(version_dir.name):
                continue  # "01" would be a second "1"; "²".isdigit() is true
            if not (version_dir / MANIFEST_NAME).is_file():
                continue
            if not version_dir.resolve().is_relative_to(base):
                logger.warning("skipping %s: it leads outside %s", version_dir, root)
                continue
            found[(model_dir.name, int(version_dir.name))] = version_dir
    return found


def _fingerprint(path: Path) -> Fingerprint:
    entries = []
    for child in sorted(path.iterdir()):
        try:
            stat = child.stat()
        except OSError:  # vanished between listing and stat: the next scan sees the truth
            continue
        entries.append((child.name, stat.st_mtime_ns, stat.st_size))
    return tuple(entries)
