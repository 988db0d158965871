"""The request path between HTTP and the runtime: every prediction surface goes through here.

A view decodes, calls the data plane, encodes (MLServer's REST handlers ->
``DataPlane`` -> model -> codecs)::

    call = dataplane.begin(environ, state, name)       # access control, model choice
    rows = records.decode_records(call.body_json(), call.manifest, ...)
    return encode(call.predict(rows))                    # the runtime, recorded

:func:`begin` is the only way a view gets a model, and it checks the API key
first, so no view can skip access control. :meth:`Call.predict` is the only
way a view reaches the runtime, and it records what answered (the observing
middleware reads the :class:`Call` from the environ for metrics, the model
headers and the access log), so no view can lose its metrics. Steps that act
on every prediction (explanations, a request log, shadow scoring) belong in
:meth:`Call.predict`, beside the recording.

Nothing here imports Flask: the environ is the WSGI one, so the same path
serves any WSGI server, and a test can drive it with a plain dict.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import numpy as np
from werkzeug.wsgi import get_content_length, get_input_stream

from .artifact import ModelManifest
from .codecs.jsonbody import parse_json
from .errors import PayloadTooLarge, Unauthorized, UnsupportedMediaType
from .explain import Explanation, NotExplainable, explainer_for
from .metrics import Metrics
from .runtime.base import Prediction
from .runtime.registry import ModelRegistry, ServedModel
from .schema import Table
from .settings import Settings

#: where :func:`begin` leaves the request's :class:`Call`, for the observing middleware
CALL = "flaskserve.call"
#: the app's ServerState, which the observing middleware leaves in each request's environ
STATE = "flaskserve.state"


@dataclass(frozen=True)
class ServerState:
    """The settings, the model registry and the metrics of one app."""

    settings: Settings
    registry: ModelRegistry
    metrics: Metrics
    #: told of every answered prediction (:mod:`flaskserve.monitoring`)
    observers: tuple[Any, ...] = ()


@dataclass(eq=False)
class Call:
    """One request to one model, from access control to the recorded answer.

    :ivar model: the model version chosen for this request.
    :ivar answered: the model version that answered (``None`` until it did).
    :ivar rows: the rows it answered, for the metrics.
    :ivar inputs: those rows, and :ivar prediction: its answer, for the monitors.
    """

    environ: dict[str, Any]
    state: ServerState
    model: ServedModel
    predicting: bool
    answered: ServedModel | None = None
    rows: int | None = None
    inputs: np.ndarray | Table | None = None
    prediction: Prediction | None = None

    @property
    def manifest(self) -> ModelManifest:
        """The chosen model's manifest."""
        return self.model.runtime.manifest

    def body(self) -> bytes:
        """The raw body within ``max_body_bytes`` (see :func:`read_body`)."""
        return read_body(self.environ, self.state.settings.max_body_bytes)

    def body_json(self) -> Any:
        """The body parsed as strict JSON whatever its Content-Type (the tutorial's ``force``).

        :raises InvalidInput: not strict JSON, or nested deeper than ``max_json_depth``.
        """
        return parse_json(self.body(), self.state.settings.max_json_depth)

    def predict(self, rows: np.ndarray | Table, *, proba: bool = False) -> Prediction:
        """Run the chosen model on *rows* and record that it answered them."""
        runtime = self.model.runtime
        scored = getattr(runtime, "predict_with_scores", None)
        if not proba and scored is not None and self._shadowed():
            prediction: Prediction = scored(rows)  # the shadow compares them without a rerun
        else:
            prediction = runtime.predict(rows, proba=proba)
        self.answered = self.model
        self.rows = len(rows)
        self.inputs, self.prediction = rows, prediction  # for the monitors, once answered
        return prediction

    def _shadowed(self) -> bool:
        return self.state.registry.snapshot.challenger(self.model.name) is not None

    def explain(self, rows: np.ndarray | Table) -> tuple[Prediction, Explanation]:
        """Predict *rows* (recorded as :meth:`predict`) and explain each answer exactly.

        :raises NotExplainable: the model has no exact explanation (501, saying why).
        :raises PayloadTooLarge: explaining this many rows would take longer than
            ``explain_seconds`` at the model's measured speed.
        """
        if self.model.path is None:
            raise NotExplainable(f"model {self.model.name!r} was not loaded from a directory")
        explainer = explainer_for(self.model.runtime, self.model.path)
        _check_explain_time(explainer, len(rows), self.model.name, self.state.settings)
        prediction = self.predict(rows)
        return prediction, explainer.explain(rows)

    def describe(self) -> ServedModel:
        """Record that the chosen model answered without predicting (its metadata)."""
        self.answered = self.model
        return self.model


def _check_explain_time(explainer: Any, rows: int, name: str, settings: Settings) -> None:
    """A worker busy past gunicorn's timeout is killed: refuse what would take that long."""
    cost, budget = explainer.seconds_per_row, settings.explain_seconds
    if cost is None or rows * cost <= budget:
        return
    fits = max(1, int(budget / cost))
    raise PayloadTooLarge(
        f"model {name!r} explains about {1 / cost:,.0f} rows a second: {rows} rows would take"
        f" about {rows * cost:.0f} s, over the {budget:g} s an explanation may take"
        f" (FLASKSERVE_EXPLAIN_SECONDS); send at most {fits} rows at a time"
    )


def begin(
    environ: dict[str, Any],
    state: ServerState,
    name: str | None = None,
    version: str | None = None,
    *,
    predicting: bool = True,
) -> Call:
    """Check access, choose the model, and start recording the request.

    :param name: the model asked for; ``None``: the default model.
    :param predicting: the request's time and status count in the model's statistics
        (metadata requests would skew its latency figures).
    :raises Unauthorized: API keys are configured and the request bears none of them.
    :raises ModelNotFound: no such model or version (404).
    :raises ModelNotReady: it failed its checks or is unloaded (503).
    """
    authorize(environ, state.settings)
    # only a model that exists is recorded, so clients cannot mint metric labels
    call = Call(environ, state, state.registry.snapshot.get(name, version), predicting)
    environ[CALL] = call
    return call


def authorize(environ: dict[str, Any], settings: Settings) -> None:
    """When API keys are configured, allow only requests bearing one of them.

    Every configured key is compared, in constant time, so the time taken does not
    tell how much of a key was right; keys are never logged.

    :raises Unauthorized: keys are configured and none was presented, or a wrong one.
    """
    keys = settings.api_key_list
    if not keys:
        return
    scheme, _, bearer = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    presented = environ.get("HTTP_X_API_KEY") or (
        bearer.strip() if scheme.lower() == "bearer" else ""
    )
    matches = [hmac.compare_digest(presented.encode(), key.encode()) for key in keys]
    if not presented or not any(matches):
        raise Unauthorized(
            "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The raw body, within *limit* bytes, uncompressed.

    Werkzeug raises 413 for a declared length over the limit (Flask's
    ``MAX_CONTENT_LENGTH``), but silently truncates a chunked body at it, so a
    chunked body that fills the limit is refused here.

    :raises UnsupportedMediaType: a compressed body (no decompression bombs).
    :raises PayloadTooLarge: the body is over the limit.
    """
    encoding = environ.get("HTTP_CONTENT_ENCODING")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding.strip().lower()!r} is not accepted;"
            " send the body uncompressed"
        )
    length = get_content_length(environ)
    if length is not None:  # the hot path: read exactly what was declared, no stream wrappers
        if length > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        body: bytes = environ["wsgi.input"].read(length) if length else b""
        return body
    # chunked, or no length at all: Werkzeug's stream ends at the body's end or the limit
    body = get_input_stream(environ, safe_fallback=True, max_content_length=None).read(limit)
    if len(body) >= limit:
        raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
    return body
