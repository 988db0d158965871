"""Tutorial step 4: train a RandomForest on iris and save it to ./build/model.pkl."""

from __future__ import annotations

import os
import pickle

from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, classification_report
from sklearn.model_selection import train_test_split

RANDOM_SEED = 1234


def main() -> None:
    # STEP 1) data load
    data = load_iris()

    # STEP 2) data split
    X = data["data"]
    y = data["target"]

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=RANDOM_SEED
    )

    # STEP 3) train model
    model = RandomForestClassifier(n_estimators=300, random_state=RANDOM_SEED)
    model.fit(X_train, y_train)

    # STEP 4) evaluate model
    print(f"Accuracy :  {accuracy_score(y_test, model.predict(X_test))}")
    print(classification_report(y_test, model.predict(X_test)))

    # STEP 5) save model to ./build/model.pkl (relative to the current directory)
    os.makedirs("./build", exist_ok=True)
    with open("./build/model.pkl", "wb") as f:
        pickle.dump(model, f)


if __name__ == "__main__":
    main()
