"""Tutorial step 5: serve the model from ./build/model.pkl with POST /predict."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue


def load_model(path: str = "./build/model.pkl") -> Any:
    # This is the tutorial's own pickle, written by train.py on this machine.
    # Unpickling runs arbitrary code, so only load files you created yourself.
    # flaskserve itself never unpickles (see `flaskserve import --trust-pickle`).
    with open(path, "rb") as f:
        return pickle.load(f)


# Load the model trained by train.py (relative to the current directory).
model = load_model()

# Implement the Flask server.
app = Flask(__name__)


# POST /predict API.
@app.route("/predict", methods=["POST"])
def make_predict() -> ResponseReturnValue:
    # Convert the request body to a dict (force=True ignores the content type).
    request_body = request.get_json(force=True)

    # Shape the request body the way the model expects: one row, four features.
    X_test = np.array(
        [
            request_body["sepal_length"],
            request_body["sepal_width"],
            request_body["petal_length"],
            request_body["petal_width"],
        ]
    ).reshape(1, -1)

    # Call the model's predict to get the prediction.
    y_test = model.predict(X_test)

    # Return the prediction as the JSON response body, e.g. {"result":[2]}.
    return jsonify(result=y_test.tolist())


if __name__ == "__main__":
    # No debug=True / 0.0.0.0: the Werkzeug debugger is a remote Python shell.
    app.run(host="127.0.0.1", port=5000)
