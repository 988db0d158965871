"""Prometheus metrics in one process (the multi-worker sum is tested on a real server)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.settings import Settings

ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_requests_rows_latency_and_version(model_dir: Path) -> None:
    client: FlaskClient = create_app(Settings(model_dir=model_dir, poll_seconds=0)).test_client()
    for _ in range(3):
        client.post("/predict", json=[ROW, ROW])
    client.post("/predict", data=b"{bad")
    client.get("/nowhere")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert (
        _sample(text, "flaskserve_requests_total", endpoint="/predict", model="iris", status="200")
        == 3
    )
    assert _sample(text, "flaskserve_requests_total", endpoint="/predict", status="400") == 1
    assert _sample(text, "flaskserve_requests_total", endpoint="unmatched", status="404") == 1
    assert _sample(text, "flaskserve_rows_predicted_total", model="iris", version="1") == 6
    assert _sample(text, "flaskserve_request_seconds_count", endpoint="/predict") == 4
    assert _sample(text, "flaskserve_model_version", model="iris") == 1
    assert not re.search(r'endpoint="/nowhere"', text)  # raw paths never become labels


def test_load_failures_are_counted(model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(model_dir, root / "iris" / "1")
    shutil.copytree(model_dir, root / "iris" / "2")
    with (root / "iris" / "2" / "model.skops").open("ab") as f:
        f.write(b"tampered")
    client = create_app(Settings(model_dir=root, poll_seconds=0)).test_client()
    text = client.get("/metrics").get_data(as_text=True)
    assert _sample(text, "flaskserve_model_load_failures_total", model="iris") == 1


def test_version_gauge_follows_a_new_version(model_dir: Path, tmp_path: Path) -> None:
    """The gauge is written only when the answering version changes: it must still change."""
    root = tmp_path / "models"
    shutil.copytree(model_dir, root / "iris" / "1")
    app = create_app(Settings(model_dir=root, poll_seconds=0))
    client = app.test_client()
    client.post("/predict", json=ROW)
    text = client.get("/metrics").get_data(as_text=True)
    assert _sample(text, "flaskserve_model_version", model="iris") == 1
    shutil.copytree(model_dir, root / "iris" / "2")
    app.extensions["flaskserve"].registry.refresh()
    assert client.post("/predict", json=ROW).headers["X-Model-Version"] == "2"
    text = client.get("/metrics").get_data(as_text=True)
    assert _sample(text, "flaskserve_model_version", model="iris") == 2
    assert _sample(text, "flaskserve_rows_predicted_total", model="iris", version="2") == 1
