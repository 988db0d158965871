"""Server settings: constructor arguments first, then ``FLASKSERVE_*`` variables."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from .admission import RUNTIME_CHOICES
from .errors import SettingsError
from .runtime.compiled import PARALLEL_ROWS
from .runtime.shadows import parse_shadows

ENV_PREFIX = "FLASKSERVE_"
DEFAULT_MODEL_DIR = Path("build/iris")
#: a worker's monitor process runs at this nice value above its worker's (docs/monitoring.md)
MONITOR_NICE = 10
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def parse_bool(raw: str) -> bool | None:
    """``True``/``False`` for the words a person uses for them (any case), else ``None``."""
    value = raw.strip().lower()
    return True if value in _TRUE else False if value in _FALSE else None


@dataclass(frozen=True)
class Settings:
    """What one server process needs to know.

    :param model_dir: one model artifact, or a ``<name>/<version>/`` repository of them.
    :param max_body_bytes: largest request body accepted (413 beyond).
    :param max_rows: largest batch accepted in one request (413 beyond).
    :param max_json_depth: deepest nesting of arrays and objects in a JSON body (400 beyond).
    :param max_explain_rows: largest batch one explanation request may hold (413 beyond):
        an explanation costs more per row than a prediction.
    :param explain_seconds: the longest one explanation request may be expected to take at
        the model's measured speed (413 beyond): a worker busy past gunicorn's 30 s timeout
        is killed.
    :param poll_seconds: how often each worker rescans ``model_dir``; 0: never.
    :param admin_token: turns on the repository API (index/load/unload) for
        requests bearing it; ``None`` keeps that API off.
    :param state_dir: where worker processes share load/unload decisions
        (``flaskserve serve`` makes one); ``None``: each process decides alone.
    :param default_model: the model ``/predict`` and ``/invocations`` serve.
    :param runtime: ``auto`` (compiled when it passed its parity gate), ``sklearn`` or ``compiled``.
    :param batching: coalesce concurrent requests to a scikit-learn model into one call
        (effective with threaded workers, ``flaskserve serve --threads``).
    :param batch_max_rows: the most rows one coalesced call receives.
    :param parallel_rows: a request of at least this many rows to a compiled model runs on
        every core the process may use (where the model's parity gate allowed it); 0: never.
    :param batch_wait_ms: under concurrency, how long a batch waits for more requests
        (a request that arrives alone never waits); 0: only what queued.
    :param api_keys: comma-separated keys; when set, prediction and model endpoints need one
        (``Authorization: Bearer <key>`` or ``X-API-Key: <key>``).
    :param access_log: log one JSON line per request (request id, model, status, latency).
    :param request_timeout: seconds a client has to send its whole request (headers and
        body) before it gets a 408; waiting costs a buffer, never a worker.
    :param ui: serve the web pages (``/`` for browsers, ``/ui/<model>``); off: 404.
    :param drift: count the rows each model answers against its training baseline
        (``GET /model/<name>/drift``, ``flaskserve_feature_psi``).
    :param drift_window_seconds: the recent window drift is also reported over.
    :param log_dir: write a sample of answered requests there as Parquet files; ``None``: off.
    :param log_sample: the fraction of answered requests the log keeps (0 < f <= 1).
    :param log_max_bytes: the log's disk budget; the oldest files go first.
    :param log_roll_rows: a log file is closed at this many rows ...
    :param log_roll_seconds: ... or this many seconds after its first row.
    :param shadow: challengers, ``name=version[@fraction]`` comma-separated: each scores
        that fraction of its model's requests off the request path and answers no client.
    :param monitor_nice: how much lower than its worker's the CPU priority of a worker's
        monitor process is (0-19; the request log and shadows run there under
        ``flaskserve serve``).
    """

    model_dir: Path = DEFAULT_MODEL_DIR
    max_body_bytes: int = 10 * 1024 * 1024
    max_rows: int = 10_000
    max_json_depth: int = 32
    max_explain_rows: int = 1_000
    explain_seconds: float = 10.0
    poll_seconds: float = 2.0
    admin_token: str | None = None
    state_dir: Path | None = None
    default_model: str | None = None
    runtime: str = "auto"
    batching: bool = True
    batch_max_rows: int = 256
    batch_wait_ms: float = 5.0
    parallel_rows: int = PARALLEL_ROWS
    api_keys: str | None = None
    access_log: bool = False
    request_timeout: float = 30.0
    ui: bool = True
    drift: bool = True
    drift_window_seconds: float = 900.0
    log_dir: Path | None = None
    log_sample: float = 1.0
    log_max_bytes: int = 1024**3
    log_roll_rows: int = 10_000
    log_roll_seconds: float = 60.0
    shadow: str | None = None
    monitor_nice: int = MONITOR_NICE

    def __post_init__(self) -> None:
        # accept plain strings for paths, as os.PathLike-taking APIs do
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        if self.state_dir is not None:
            object.__setattr__(self, "state_dir", Path(self.state_dir))
        positive = ("max_body_bytes", "max_rows", "max_json_depth", "max_explain_rows")
        for name in (*positive, "batch_max_rows"):
            if getattr(self, name) < 1:
                raise SettingsError(
                    f"{name}: expected a positive integer, got {getattr(self, name)}"
                )
        if not 0 < self.request_timeout < math.inf:
            raise SettingsError(
                f"request_timeout: expected a positive number, got {self.request_timeout}"
            )
        if self.parallel_rows < 0:
            raise SettingsError(
                f"parallel_rows: expected 0 (off) or a positive integer, got {self.parallel_rows}"
            )
        if not 0 < self.explain_seconds < math.inf:
            raise SettingsError(
                f"explain_seconds: expected a positive number, got {self.explain_seconds}"
            )
        for name in ("poll_seconds", "batch_wait_ms"):
            if not 0 <= getattr(self, name) < math.inf:
                raise SettingsError(f"{name}: expected 0 or more, got {getattr(self, name)}")
        if self.runtime not in RUNTIME_CHOICES:
            choices = f"{', '.join(RUNTIME_CHOICES[:-1])} or {RUNTIME_CHOICES[-1]}"
            raise SettingsError(f"runtime: expected {choices}, got {self.runtime!r}")
        if self.api_keys is not None and any(len(k) < 16 for k in self.api_key_list):
            raise SettingsError("api_keys: expected comma-separated keys of at least 16 characters")
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise SettingsError("admin_token: expected at least 16 characters")
        self._check_monitoring()

    def _check_monitoring(self) -> None:
        if self.log_dir is not None:
            object.__setattr__(self, "log_dir", Path(self.log_dir))
        if not 0 < self.log_sample <= 1:
            raise SettingsError(f"log_sample: expected a fraction in (0, 1], got {self.log_sample}")
        for name in ("drift_window_seconds", "log_roll_seconds"):
            if not 0 < getattr(self, name) < math.inf:
                raise SettingsError(
                    f"{name}: expected a positive number, got {getattr(self, name)}"
                )
        parse_shadows(self.shadow)  # a bad --shadow stops serve before any worker starts
        if not 0 <= self.monitor_nice <= 19:
            raise SettingsError(f"monitor_nice: expected 0 to 19, got {self.monitor_nice}")
        for name in ("log_max_bytes", "log_roll_rows"):
            if getattr(self, name) < 1:
                raise SettingsError(
                    f"{name}: expected a positive integer, got {getattr(self, name)}"
                )

    @cached_property  # read on every request
    def api_key_list(self) -> tuple[str, ...]:
        """The configured API keys, without blanks."""
        return tuple(k.strip() for k in (self.api_keys or "").split(",") if k.strip())

    def registry_options(self) -> dict[str, Any]:
        """What ``ModelRegistry`` takes from these settings, beside the model directory: the
        same for a worker and its monitor process, which must load the models alike."""
        return {
            "state_dir": self.state_dir,
            "default_model": self.default_model,
            "runtime": self.runtime,
            "parallel_rows": self.parallel_rows,
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``FLASKSERVE_<FIELD>`` variables, then apply *overrides*.

        :param environ: the variables to read (default: ``os.environ``).
        :raises SettingsError: a variable does not parse; the message names it.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            key = ENV_PREFIX + field.name.upper()
            if key in environ:
                values[field.name] = _parse(key, environ[key], str(field.type))
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return replace(cls(), **values)
        except SettingsError as e:  # name the variable, not the field
            name = e.message.split(":", 1)[0]
            key = ENV_PREFIX + name.upper()
            raise SettingsError(f"{key}: {e.message.split(': ', 1)[1]}") from None


_ZERO_MEANS_OFF = {ENV_PREFIX + "PARALLEL_ROWS", ENV_PREFIX + "MONITOR_NICE"}


def _parse(key: str, raw: str, kind: str) -> object:
    if kind.startswith("Path"):
        if not raw.strip():
            raise SettingsError(f"{key}: expected a path, got an empty value")
        return Path(raw)
    if kind.startswith("str"):
        return raw
    if kind == "bool":
        flag = parse_bool(raw)
        if flag is None:
            raise SettingsError(f"{key}: expected true or false, got {raw!r}")
        return flag
    if kind == "float":
        try:
            seconds = float(raw)
        except ValueError:
            raise SettingsError(f"{key}: expected a number, got {raw!r}") from None
        if not 0 <= seconds < math.inf:
            raise SettingsError(f"{key}: expected 0 or more, got {raw!r}")
        return seconds
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise SettingsError(f"{key}: expected a positive integer, got {raw!r}") from None
    if key in _ZERO_MEANS_OFF and value < 0:
        raise SettingsError(f"{key}: expected 0 (off) or a positive integer, got {raw!r}")
    if value < 1 and key not in _ZERO_MEANS_OFF:
        raise SettingsError(f"{key}: expected a positive integer, got {raw!r}")
    return value
