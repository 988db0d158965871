"""The application factory: ``gunicorn 'flaskserve.app:create_app()'``."""

from __future__ import annotations

import logging

from flask import Flask

from .api import health, predict
from .api.errors import register_error_handlers
from .api.state import EXTENSION_KEY, ServerState
from .errors import ArtifactError
from .json import NumpyJSONProvider
from .runtime import load_runtime
from .settings import Settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app and load its model.

    A model that fails to load does not stop the process: ``/ready`` and every
    prediction answer 503 with the reason, so one bad artifact can never make a
    gunicorn worker fail to boot and take its healthy siblings down with it.

    :param settings: default: :meth:`Settings.from_env` (``FLASKSERVE_*`` variables).
    """
    settings = settings if settings is not None else Settings.from_env()
    app = Flask(__name__)
    app.json = NumpyJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.debug = False  # the Werkzeug debugger runs arbitrary code; never from the factory
    app.extensions[EXTENSION_KEY] = _load_state(settings)
    register_error_handlers(app)
    app.register_blueprint(predict.bp)
    app.register_blueprint(health.bp)
    return app


def _load_state(settings: Settings) -> ServerState:
    state = ServerState(settings)
    try:
        state.runtime = load_runtime(settings.model_dir)
    except ArtifactError as e:
        state.load_error = e.message
        logger.error("model not loaded: %s", e.message)
    else:
        manifest = state.runtime.manifest
        logger.info(
            "serving model %r version %s from %s",
            manifest.name,
            manifest.version,
            settings.model_dir,
        )
    return state
