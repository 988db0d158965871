"""A WSGI app, hooks and a worker for the buffering worker's rarer paths, run by gunicorn.

``gunicorn -k worker_apps.FewWaitingWorker -c python:worker_apps worker_apps:app``
(with this directory on ``PYTHONPATH``); the hooks act only on their own paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flaskserve.serving.worker import BufferingSyncWorker

StartResponse = Callable[..., Any]


class FewWaitingWorker(BufferingSyncWorker):
    """The buffering worker with room for two waiting connections, not a thousand."""

    max_waiting = 2


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/begun-then-fails":
        start_response("200 OK", [("Content-Type", "text/plain")])  # sent chunked
        return _fails_after_a_part()
    body = b'{"ok":true}\n'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "12")])
    return [body]


def _fails_after_a_part() -> Iterator[bytes]:
    yield b"the first part\n"
    raise RuntimeError("the app failed after its answer began")


def pre_request(worker: Any, req: Any) -> None:
    if req.path == "/pre-request-fails":
        raise RuntimeError("the pre_request hook failed")


def post_request(worker: Any, req: Any, environ: dict[str, Any], resp: Any) -> None:
    if req.path == "/post-request-fails":
        raise RuntimeError("the post_request hook failed")
