"""One error hierarchy for every layer; the HTTP status lives on the class.

Nothing here imports Flask: the runtime and codecs raise these, and
``api/errors.py`` turns any of them into ``{"error": message}``.
"""

from __future__ import annotations

from http import HTTPStatus


class FlaskServeError(Exception):
    """Base of every error flaskserve raises on purpose."""

    status_code: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    headers: tuple[tuple[str, str], ...] = ()

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(FlaskServeError):
    """The request is malformed or does not fit the model's schema."""

    status_code = HTTPStatus.BAD_REQUEST


class PayloadTooLarge(FlaskServeError):
    """The body or the number of rows is over the configured limit."""

    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(FlaskServeError):
    """The body's content type or encoding is one flaskserve does not read."""

    status_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class ModelNotFound(FlaskServeError):
    """No model of that name (or version) is served."""

    status_code = HTTPStatus.NOT_FOUND


class ModelNotReady(FlaskServeError):
    """The model exists but could not be loaded, or is still loading."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    headers = (("Retry-After", "5"),)  # a rescan or a load may bring it back


class ModelError(FlaskServeError):
    """The model itself failed or produced an invalid (non-finite) output."""

    status_code = HTTPStatus.INTERNAL_SERVER_ERROR


class ArtifactError(FlaskServeError):
    """A model artifact is missing, malformed, tampered with or untrusted."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE


class SettingsError(FlaskServeError):
    """A setting (argument or ``FLASKSERVE_*`` variable) has a bad value."""


class DatasetError(FlaskServeError):
    """Training data that cannot be used: unreadable, ragged, non-numeric."""

    status_code = HTTPStatus.BAD_REQUEST


class Unauthorized(FlaskServeError):
    """A protected endpoint was called without the right bearer token."""

    status_code = HTTPStatus.UNAUTHORIZED
    headers = (("WWW-Authenticate", 'Bearer realm="flaskserve"'),)


class Forbidden(FlaskServeError):
    """The endpoint is switched off by configuration."""

    status_code = HTTPStatus.FORBIDDEN
