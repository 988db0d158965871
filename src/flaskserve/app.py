"""The application factory: ``gunicorn 'flaskserve.app:create_app()'``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask

from .api import explain, health, kserve_v1, mlflow, openapi, predict, shadow, ui, v2
from .api.drift import bp as drift_bp
from .api.errors import register_error_handlers
from .api.observability import register_request_logging
from .api.state import EXTENSION_KEY
from .dataplane import ServerState
from .json import NumpyJSONProvider
from .metrics import Metrics
from .monitoring import build_observers
from .runtime.base import Runtime
from .runtime.batching import BatchingRuntime
from .runtime.registry import ModelRegistry
from .settings import Settings

logger = logging.getLogger(__name__)


class FlaskServeApp(Flask):
    """Flask, deciding once per view or hook whether it is a coroutine.

    Flask asks ``inspect.iscoroutinefunction`` of every hook and view on every
    request, through the documented :meth:`ensure_sync` override point; on a
    request answered in a few hundred microseconds that check was 3% of it.
    """

    def __init__(self, import_name: str) -> None:
        # no app-wide /static route: the pages' files are the ui blueprint's
        super().__init__(import_name, static_folder=None)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        sync = self._sync.get(func)
        if sync is None:
            sync = self._sync[func] = super().ensure_sync(func)
        return sync


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app and load its models.

    A model that fails to load does not stop the process: ``/ready`` and its
    prediction endpoints answer 503 with the reason, so one bad artifact can
    never make a gunicorn worker fail to boot and take its siblings down.
    Each worker rescans the model directory every ``poll_seconds``, starting
    with its first request (so the watcher thread is born after gunicorn forks).

    :param settings: default: :meth:`Settings.from_env` (``FLASKSERVE_*`` variables).
    """
    settings = settings if settings is not None else Settings.from_env()
    app = FlaskServeApp(__name__)
    app.json = NumpyJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.debug = False  # the Werkzeug debugger runs arbitrary code; never from the factory
    metrics = Metrics()
    registry = ModelRegistry(
        settings.model_dir,
        **settings.registry_options(),
        wrap=_batching(settings),
        on_failure=lambda name, version, reason: metrics.load_failures.labels(name).inc(),
    )
    _log_snapshot(registry)
    observers = build_observers(settings, registry, metrics)
    app.extensions[EXTENSION_KEY] = ServerState(settings, registry, metrics, observers)
    app.before_request(lambda: registry.start_watching(settings.poll_seconds))
    register_error_handlers(app)
    register_request_logging(app)
    app.register_blueprint(predict.bp)
    app.register_blueprint(explain.bp)
    app.register_blueprint(kserve_v1.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(drift_bp)
    app.register_blueprint(v2.bp)
    app.register_blueprint(mlflow.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(ui.bp)
    app.register_blueprint(shadow.bp)
    return app


def _batching(settings: Settings) -> Callable[[Runtime], Runtime] | None:
    """Coalesce concurrent calls to scikit-learn models; compiled ones answer in microseconds."""
    if not settings.batching:
        return None

    def wrap(runtime: Runtime) -> Runtime:
        if runtime.kind != "sklearn":
            return runtime
        return BatchingRuntime(
            runtime, max_rows=settings.batch_max_rows, max_wait_ms=settings.batch_wait_ms
        )

    return wrap


def _log_snapshot(registry: ModelRegistry) -> None:
    snapshot = registry.refresh()
    for name, versions in snapshot.models.items():
        logger.info("serving model %r versions %s from %s", name, sorted(versions), registry.root)
    if snapshot.error:
        logger.error("no model loaded: %s", snapshot.error)
