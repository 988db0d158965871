"""Check a model repository before the server forks: every worker would find the same.

``flaskserve serve`` runs :func:`inspect` in a child process (ONNX Runtime's threads
do not survive gunicorn's fork, and the master has no use for the models it would
hold) and refuses to start when no model would serve.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import ArtifactError, SettingsError
from .runtime.registry import ModelRegistry
from .settings import DEFAULT_MODEL_DIR, Settings


@dataclasses.dataclass(frozen=True)
class RepositoryReport:
    """What a repository would serve, and why anything in it would not."""

    models: dict[str, str]  # "name vN" -> runtime kind
    names: list[str]
    failures: list[tuple[str, int, str]]
    error: str | None
    notes: list[str]  # the registry's warnings: a version leading outside, a forced runtime

    def warnings(self) -> list[str]:
        refused = [
            f"model {name!r} version {version} will not be served: {reason}"
            for name, version, reason in self.failures
        ]
        return [*self.notes, *refused]


def check_repository(settings: Settings, warn: Callable[[str], None]) -> RepositoryReport:
    """Load every model once, in a child process; refuse a directory with none that works.

    :param warn: told each version that will not be served, and why, before any refusal.
    :raises ArtifactError: no model would serve (the reasons, joined).
    :raises SettingsError: the configured default model is not in the repository.
    """
    command = [sys.executable, "-m", "flaskserve", "inspect-repository", str(settings.model_dir)]
    command += ["--runtime", settings.runtime]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ArtifactError(f"checking {settings.model_dir} failed: {done.stderr.strip()[-500:]}")
    report = RepositoryReport(**json.loads(done.stdout))
    for warning in report.warnings():
        warn(warning)
    if not report.models:
        reasons = [report.error] if report.error else [r for _, _, r in report.failures]
        reasons += report.notes
        hint = " (run `flaskserve train` first)" if settings.model_dir == DEFAULT_MODEL_DIR else ""
        message = "; ".join(r for r in reasons if r) or "no model could be loaded"
        raise ArtifactError(message + hint)
    if settings.default_model is not None and settings.default_model not in report.names:
        raise SettingsError(
            f"FLASKSERVE_DEFAULT_MODEL: {settings.default_model!r} is not a model in"
            f" {settings.model_dir} (models: {', '.join(report.names)})"
        )
    return report


class _WarningCollector(logging.Handler):
    """Keeps the messages of WARNING records (errors are reported as failures already)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.notes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING:
            self.notes.append(record.getMessage())


def inspect(model_dir: Path, runtime: str) -> RepositoryReport:
    """Admit every model in *model_dir* as a worker would, and report the outcome."""
    # Everything goes into the report, once: failures from the snapshot, and notes
    # (a version that leads outside the directory) from the registry's warnings.
    collector = _WarningCollector()
    package_log = logging.getLogger("flaskserve")
    package_log.addHandler(collector)
    package_log.propagate = False
    snapshot = ModelRegistry(model_dir, runtime=runtime).refresh()
    models = {
        f"{name} v{max(versions)}": versions[max(versions)].runtime.kind
        for name, versions in snapshot.models.items()
    }
    failures = [(name, version, reason) for (name, version), reason in snapshot.failures.items()]
    return RepositoryReport(
        models, sorted(snapshot.models), failures, snapshot.error, collector.notes
    )
