"""Steps 1-3 of the Flask tutorial: hello world, routing and HTTP methods."""

from __future__ import annotations

import json

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello_world() -> str:
    return "<p>Hello, World!</p>"


@app.route("/helloai")
def hello_ai() -> str:
    return "<p>Hello, AI!</p>"


@app.route("/predict", methods=["POST", "PUT"])
def inference() -> tuple[str, int]:
    # Return the body with HTTP status code 200; GET is not allowed -> 405.
    return json.dumps({"hello": "world"}), 200


if __name__ == "__main__":
    # No debug=True / 0.0.0.0: the Werkzeug debugger is a remote Python shell.
    app.run(host="127.0.0.1", port=5000)
