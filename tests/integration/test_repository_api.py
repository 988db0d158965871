"""The repository API over a real multi-worker server: every worker follows load/unload."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from liveserver import LiveServer

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
TOKEN = "t" * 32
ROW = [[5.9, 3.0, 5.1, 1.8]]


def _statuses(url: str, count: int = 12) -> set[int]:
    """Status codes over several fresh connections, so several workers answer."""
    return {
        requests.post(f"{url}/predict/iris", json=ROW, timeout=10).status_code for _ in range(count)
    }


def _until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_unload_and_load_reach_every_worker(
    model_dir: Path, tmp_path: Path, start: Callable[..., LiveServer]
) -> None:
    root = tmp_path / "models"
    shutil.copytree(model_dir, root / "iris" / "1")
    args = [str(BIN / "flaskserve"), "serve", str(root), "--port", "{port}", "--workers", "3"]
    server = start(args, env={"FLASKSERVE_ADMIN_TOKEN": TOKEN, "FLASKSERVE_POLL_SECONDS": "0.3"})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = server.url

    assert requests.post(f"{url}/v2/repository/index", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * 32}
    assert (
        requests.post(
            f"{url}/v2/repository/models/iris/unload", headers=wrong, timeout=10
        ).status_code
        == 401
    )
    assert _statuses(url) == {200}

    response = requests.post(f"{url}/v2/repository/models/iris/unload", headers=auth, timeout=10)
    assert response.json() == {"name": "iris", "state": "UNLOADED"}
    assert _until(lambda: _statuses(url) == {503})
    index = requests.post(f"{url}/v2/repository/index", headers=auth, timeout=10).json()
    assert {"name": "iris", "version": "", "state": "UNLOADED", "reason": ""} in index

    response = requests.post(f"{url}/v2/repository/models/iris/load", headers=auth, timeout=10)
    assert response.json() == {"name": "iris", "version": "1", "state": "READY"}
    assert _until(lambda: _statuses(url) == {200})
    missing = requests.post(f"{url}/v2/repository/models/nope/load", headers=auth, timeout=10)
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"]
