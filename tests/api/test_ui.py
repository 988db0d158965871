"""The web pages: ``/`` for browsers and clients, ``/ui/<model>`` and its model card."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from html import escape as html_escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsClassifier
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.test import TestResponse

from assertions import assert_error, json_body
from census import FEATURES as CENSUS_FEATURES
from flaskserve.api.ui import form_fields, input_step, model_card
from flaskserve.app import create_app
from flaskserve.artifact import MANIFEST_NAME, Feature, ModelManifest, read_manifest
from flaskserve.packaging import save_model
from flaskserve.settings import Settings
from flaskserve.training import load_iris_dataset

CHROMIUM = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]
KEY = "k" * 24
HOSTILE = "</script><b>x</b>\"'&"


class Page(HTMLParser):
    """What the tests look at in a page: elements, script blocks, label and table texts.

    ``chart_labels`` holds each SVG chart's ``<text class="label">`` texts by the chart's
    id; ``svg_labels`` those of the feature importances chart.
    """

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self.labels: dict[str, str] = {}  # for= -> text
        self.chart_labels: dict[str, list[str]] = {}  # svg id -> its <text class="label">s
        self._chart = ""
        self.tables: dict[str, list[list[tuple[str, str]]]] = {}  # id -> rows of (text, class)
        self._table: str | None = None
        self._row: list[tuple[str, str]] | None = None
        self._capture: tuple[str, dict[str, str]] | None = None
        self._text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attributes))
        if tag == "svg":
            self._chart = attributes.get("id", "")
            self.chart_labels[self._chart] = []
        elif tag == "table":
            self._table = attributes.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._row.append(("", attributes.get("class", "")))
        elif tag in ("script", "label") or (tag == "text" and attributes.get("class") == "label"):
            self._capture, self._text = (tag, attributes), []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append([(t.strip(), c) for t, c in self._row])
            self._row = None
        elif tag == "table":
            self._table = None
        elif self._capture is not None and tag == self._capture[0]:
            attributes, text = self._capture[1], "".join(self._text)
            if tag == "script":
                self.scripts.append((attributes, text))
            elif tag == "label":
                self.labels[attributes["for"]] = text.strip()
            else:
                self.chart_labels[self._chart].append(text)
            self._capture = None

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._text.append(data)
        if self._row:
            text, cls = self._row[-1]
            self._row[-1] = (text + data, cls)

    @property
    def svg_labels(self) -> list[str]:
        return self.chart_labels.get("importances", [])

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def by_id(self, element_id: str) -> dict[str, str]:
        (found,) = [a for _, a in self.elements if a.get("id") == element_id]
        return found

    def model_data(self) -> dict[str, Any]:
        (text,) = [t for a, t in self.scripts if a.get("id") == "model-data"]
        data = json.loads(text)
        assert isinstance(data, dict)
        return data


def _html(response: TestResponse) -> str:
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def _text_of(html: str, element_id: str) -> str:
    """The text of the element with *element_id*, tags dropped, spaces collapsed."""
    match = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', html, re.DOTALL)
    assert match, element_id
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(2)).split())


def _client(model_dir: Path, **settings: Any) -> FlaskClient:
    return create_app(Settings(model_dir=model_dir, poll_seconds=0, **settings)).test_client()


def _random_rows(rows: int, columns: int, decimals: int = 2) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 10, (rows, columns)).round(decimals)


@pytest.fixture(scope="module")
def iris_page(app: Flask) -> tuple[TestResponse, Page]:
    response = app.test_client().get("/ui/iris", headers={"Accept": CHROMIUM})
    return response, Page(_html(response))


@pytest.fixture(scope="module")
def iris_manifest(model_dir: Path) -> ModelManifest:
    return read_manifest(model_dir)


# --- / : one URL, HTML for browsers, JSON for everyone else


@pytest.mark.parametrize(
    ("accept", "mimetype"),
    [
        (CHROMIUM, "text/html"),
        (FIREFOX, "text/html"),
        ("text/html", "text/html"),
        ("*/*", "application/json"),
        (None, "application/json"),
        ("application/json", "application/json"),
        ("application/json, text/html;q=0.9", "application/json"),
        ("text/html;q=0.5, application/json", "application/json"),
    ],
    ids=[
        "chromium",
        "firefox",
        "html",
        "curl",
        "none",
        "json",
        "json-preferred",
        "html-less-preferred",
    ],
)
def test_index_negotiates(client: FlaskClient, accept: str | None, mimetype: str) -> None:
    response = client.get("/", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert "Accept" in response.headers["Vary"]


def test_json_index_lists_iris_and_real_endpoints(client: FlaskClient, app: Flask) -> None:
    body = json_body(client.get("/", headers={"Accept": "application/json"}))
    assert body["name"] == "flaskserve" and body["version"]
    assert body["models"] == [
        {"name": "iris", "versions": ["1"], "ready": True, "default": True, "load_failures": {}}
    ]
    adapter = app.url_map.bind("localhost")
    assert body["endpoints"]["explain"] == "/explain/{model}"
    for key, pattern in body["endpoints"].items():
        path = pattern.replace("{model}", "iris")
        try:
            endpoint, _ = adapter.match(path, method="GET")
        except MethodNotAllowed:  # POST-only (predict, infer): the route exists
            continue
        assert endpoint != "static", (key, pattern)


def test_html_index_links_to_the_model_page(client: FlaskClient) -> None:
    response = client.get("/", headers={"Accept": CHROMIUM})
    page = Page(_html(response))
    assert page.find("a", href="/ui/iris")
    assert "Content-Security-Policy" in response.headers


# --- /ui/iris: the form


def test_one_labelled_text_input_per_feature(
    iris_page: tuple[TestResponse, Page], iris_manifest: ModelManifest
) -> None:
    page = iris_page[1]
    boxes = page.find("input", type="text")
    assert [b["data-feature"] for b in boxes] == list(iris_manifest.feature_names)
    for box in boxes:
        assert page.labels[box["id"]] == box["data-feature"]
        error = page.by_id(f"{box['id']}-error")
        assert error["data-error-for"] == box["data-feature"]
        assert "hidden" in error
        assert page.by_id(f"{box['id']}-hint")


def test_inputs_start_at_the_first_sample_row(
    iris_page: tuple[TestResponse, Page], iris_manifest: ModelManifest
) -> None:
    first_row = iris_manifest.sample["inputs"][0]
    boxes = iris_page[1].find("input", type="text")
    assert [float(b["value"]) for b in boxes] == first_row
    assert [b["value"] for b in boxes] == [f"{v:g}" for v in first_row]  # 5.1, never 5.1000...


def test_sliders_span_the_training_range(
    iris_page: tuple[TestResponse, Page], iris_manifest: ModelManifest
) -> None:
    page = iris_page[1]
    sliders = page.find("input", type="range")
    assert len(sliders) == len(iris_manifest.features)
    for slider, feature in zip(sliders, iris_manifest.features, strict=True):
        box = page.by_id(slider["data-for"])
        assert box["data-feature"] == feature.name
        assert (float(slider["min"]), float(slider["max"])) == (feature.min, feature.max)
        assert slider["step"] == "0.1"
        assert slider["value"] == box["value"]
        assert slider["id"] in page.labels  # a slider has a (visually hidden) label too


# --- /ui/iris: the model card


def test_card_shows_per_class_report(iris_page: tuple[TestResponse, Page]) -> None:
    rows = iris_page[1].tables["per-class"]
    header, body = rows[0], rows[1:]
    assert [text for text, _ in header] == ["Class", "Precision", "Recall", "F1", "Support"]
    assert [[text for text, _ in row] for row in body] == [
        ["setosa", "1.00", "1.00", "1.00", "16"],
        ["versicolor", "0.94", "0.94", "0.94", "17"],
        ["virginica", "0.92", "0.92", "0.92", "12"],
    ]


def test_card_shows_confusion_matrix(iris_page: tuple[TestResponse, Page]) -> None:
    rows = iris_page[1].tables["confusion"]
    assert [text for text, _ in rows[0]] == ["", *IRIS_CLASSES]
    body = rows[1:]
    assert [row[0][0] for row in body] == IRIS_CLASSES
    assert [[int(text) for text, _ in row[1:]] for row in body] == [
        [16, 0, 0],
        [0, 16, 1],
        [0, 1, 11],
    ]
    shades = [[cls for _, cls in row[1:]] for row in body]
    assert shades[0] == ["shade-4", "shade-0", "shade-0"]  # the largest cell is darkest
    assert shades[1][2] == "shade-1"  # a single row still shows
    assert all(cls in {f"shade-{n}" for n in range(5)} for row in shades for cls in row)


def test_card_shows_importances_hash_and_metrics(
    iris_page: tuple[TestResponse, Page], iris_manifest: ModelManifest, tutorial_accuracy: float
) -> None:
    response, page = iris_page
    assert page.by_id("importances")
    assert sorted(page.svg_labels) == sorted(iris_manifest.feature_names)
    html = response.get_data(as_text=True)
    assert iris_manifest.sha256 in html
    metrics = {row[0][0]: row[1][0] for row in page.tables["metrics"]}
    assert metrics["accuracy"] == f"{tutorial_accuracy:.4f}"
    assert metrics["test_rows"] == "45"


def test_card_says_how_large_batches_run(
    iris_page: tuple[TestResponse, Page], iris_manifest: ModelManifest
) -> None:
    native = iris_manifest.compiled["native"]
    html = iris_page[0].get_data(as_text=True)
    if native["status"] == "passed":  # CI: flaskserve[native] and gcc are there
        rows = f"{native['parity']['rows']:,}"
        assert f"native code built on this machine (its gate passed on {rows} rows)" in html
    else:
        reason = html_escape(native["reason"])
        assert f"ONNX Runtime (native code {native['status']}: {reason})" in html


def test_model_data_block(iris_page: tuple[TestResponse, Page]) -> None:
    data = iris_page[1].model_data()
    assert data["name"] == "iris"
    assert data["predict_url"] == "/predict/iris"
    assert data["explain_url"] == "/explain/iris"
    assert data["stats_url"] == "/model/iris/stats"
    assert data["features"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert data["class_names"] == IRIS_CLASSES


# --- /ui/iris: explanations, of a row (drawn by the page's script) and on the card


def test_try_it_has_a_hidden_place_for_the_explanation(
    iris_page: tuple[TestResponse, Page],
) -> None:
    page = iris_page[1]
    assert "hidden" in page.by_id("explanation")
    chart = page.by_id("explain-chart")
    assert (chart["role"], "hidden" in chart) == ("img", True)
    assert "hidden" in page.by_id("explain-reason")  # where a 501's reason goes
    assert page.by_id("explain-caption")


def test_card_shows_global_importance_sorted(
    iris_page: tuple[TestResponse, Page], iris_manifest: ModelManifest
) -> None:
    response, page = iris_page
    html = response.get_data(as_text=True)
    record = iris_manifest.explanation
    importance = record["importance"]
    assert page.chart_labels["global-importance"] == sorted(
        importance, key=lambda name: -importance[name]
    )
    bars = [a for tag, a in page.elements if tag == "rect" and "data-importance" in a]
    assert {b["data-column"]: float(b["data-importance"]) for b in bars} == importance
    widths = [float(b["width"]) for b in bars]
    assert widths == sorted(widths, reverse=True) and widths[0] == 160.0
    caption = _text_of(html, "importance-caption")
    assert caption == (
        "Mean absolute contribution toward the predicted class (probability),"
        f" over {record['importance_rows']} held-out rows."
    )
    assert record["importance_rows"] == 45  # the tutorial's held-out split
    facts = _text_of(html, "explain-card")
    assert "tree_shap" in facts and "Space probability" in facts
    assert "Not explainable" not in html


def test_card_says_why_a_model_cannot_be_explained(tmp_path: Path) -> None:
    iris = load_iris_dataset()
    knn = KNeighborsClassifier().fit(iris.features, iris.target)
    save_model(
        knn,
        tmp_path / "knn",
        sample=iris.features,
        feature_names=iris.feature_names,
        class_names=iris.class_names,
        compile=False,
    )
    reason = read_manifest(tmp_path / "knn").explanation["reason"]
    assert "KNeighborsClassifier" in reason
    html = _html(_client(tmp_path / "knn").get("/ui/knn"))
    assert _text_of(html, "explain-card-reason") == f"Not explainable: {reason}"
    page = Page(html)
    assert "global-importance" not in page.chart_labels
    assert page.by_id("explain-chart")  # the page still asks /explain; the 501 says why


def test_regressor_card_importance_is_toward_the_prediction(tmp_path: Path) -> None:
    rows = _random_rows(40, 2)
    regressor = RandomForestRegressor(n_estimators=5, random_state=0).fit(rows, 1000 * rows[:, 0])
    save_model(regressor, tmp_path / "reg", sample=rows, compile=False)
    html = _html(_client(tmp_path / "reg").get("/ui/reg"))
    caption = _text_of(html, "importance-caption")
    assert caption == (
        "Mean absolute contribution to the prediction (raw score), over 40 training rows."
    )
    assert Page(html).chart_labels["global-importance"][0] == "x0"  # the target's column
    assert "Space raw score" in _text_of(html, "explain-card")


def test_artifact_from_before_explanations_renders(model_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "iris"
    shutil.copytree(model_dir, old)
    manifest_path = old / MANIFEST_NAME
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    del data["explanation"]
    manifest_path.write_text(json.dumps(data), encoding="utf-8")
    html = _html(_client(old).get("/ui/iris"))
    assert ">Explanations<" not in html
    page = Page(html)
    assert "global-importance" not in page.chart_labels
    assert sorted(page.svg_labels) == sorted(read_manifest(old).feature_names)
    assert page.model_data()["explain_url"] == "/explain/iris"  # the server may still explain


def _card_explanation(record: dict[str, Any]) -> Any:
    manifest = dataclasses.replace(_manifest([1.0, 2.0]), explanation=record)
    return model_card(manifest)["explanation"]


def test_card_explanation_helper() -> None:
    assert _card_explanation({}) is None
    assert _card_explanation({"reason": "no trees"}) == {"reason": "no trees"}
    record = {
        "method": "linear",
        "space": "log_odds",
        "mean": [0.0],
        "importance": {"a": 0.25, "b": 2.5, "c": float("nan"), "d": True, "e": "x", "f": -1.0},
        "importance_rows": 30,
        "importance_over": "training",
    }
    card = _card_explanation(record)
    assert (card["method"], card["space"], card["space_name"]) == ("linear", "log_odds", "log-odds")
    assert "training mean" in card["method_name"]
    assert (card["rows"], card["over"], card["importance_reason"]) == (30, "training", None)
    # largest first; only magnitudes (finite, not negative); three significant digits
    assert [(b["name"], b["width"], b["text"]) for b in card["importance"]] == [
        ("b", 100.0, "2.50"),
        ("a", 10.0, "0.25"),
    ]
    bare = _card_explanation({"method": "booster", "space": "raw", "importance_reason": "why"})
    assert (bare["importance"], bare["importance_reason"]) == ([], "why")


def test_card_without_importance_says_why(model_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "iris"
    shutil.copytree(model_dir, old)
    manifest_path = old / MANIFEST_NAME
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    data["explanation"] = {"method": "tree_shap", "space": "probability", "importance_reason": "x"}
    manifest_path.write_text(json.dumps(data), encoding="utf-8")
    html = _html(_client(old).get("/ui/iris"))
    assert "No importance recorded: x" in html
    assert "global-importance" not in Page(html).chart_labels


# --- /ui/iris: what the browser is allowed to run and fetch


def test_csp_allows_only_this_server(iris_page: tuple[TestResponse, Page]) -> None:
    response = iris_page[0]
    policy = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_no_inline_script_and_nothing_from_elsewhere(iris_page: tuple[TestResponse, Page]) -> None:
    page = iris_page[1]
    inline = [a for a, text in page.scripts if "src" not in a]
    assert inline == [{"id": "model-data", "type": "application/json"}]
    assert [a["src"] for a, _ in page.scripts if "src" in a] == ["/ui/static/ui.js"]
    for tag, attributes in page.elements:
        assert not any(k.startswith("on") for k in attributes), (tag, attributes)  # no onclick=
        for name in ("src", "href", "action"):
            url = attributes.get(name, "")
            assert not url.startswith(("http:", "https:", "//", "javascript:")), (tag, url)


# --- other models: escaping, a regressor, no sample, an old artifact


def test_names_from_the_artifact_are_escaped(tmp_path: Path) -> None:
    rows = _random_rows(30, 2)
    labels = (rows[:, 0] > 5).astype(int)
    estimator = RandomForestClassifier(n_estimators=3, random_state=0).fit(rows, labels)
    save_model(
        estimator,
        tmp_path / "hostile",
        sample=rows,
        feature_names=[HOSTILE, "plain"],
        class_names=["<i>no</i>", "yes&"],
        metrics={"<u>m</u>": 0.5},
        compile=False,
    )
    html = _html(_client(tmp_path / "hostile").get("/ui/hostile"))
    for raw in ("<b>x</b>", "<i>no</i>", "<u>m</u>", "</script><b>"):
        assert raw not in html
    page = Page(html)  # escaped, the names still read back exactly
    assert [b["data-feature"] for b in page.find("input", type="text")] == [HOSTILE, "plain"]
    assert page.labels["feature-0"] == HOSTILE
    assert HOSTILE in page.svg_labels
    assert HOSTILE in page.chart_labels["global-importance"]
    data = page.model_data()
    assert data["features"] == [HOSTILE, "plain"]
    assert data["class_names"] == ["<i>no</i>", "yes&"]
    assert len(page.scripts) == 2  # the data block did not end early and start a script


def test_regressor_page_has_no_class_sections(tmp_path: Path) -> None:
    rows = _random_rows(30, 3)
    regressor = RandomForestRegressor(n_estimators=5, random_state=0).fit(rows, rows.sum(axis=1))
    save_model(regressor, tmp_path / "reg", sample=rows, compile=False)
    page = Page(_html(_client(tmp_path / "reg").get("/ui/reg")))
    assert "per-class" not in page.tables and "confusion" not in page.tables
    assert sorted(page.svg_labels) == ["x0", "x1", "x2"]
    assert len(page.find("input", type="range")) == 3
    data = page.model_data()
    assert (data["task"], data["class_names"]) == ("regression", [])


def test_model_without_sample_has_no_sliders(tmp_path: Path) -> None:
    rows = _random_rows(20, 2)
    model = LinearRegression().fit(rows, rows[:, 0])
    save_model(model, tmp_path / "bare", feature_names=["a", "b"], compile=False)
    html = _html(_client(tmp_path / "bare").get("/ui/bare"))
    page = Page(html)
    assert [b["value"] for b in page.find("input", type="text")] == ["", ""]
    assert page.find("input", type="range") == []
    assert html.count("no training range recorded") == 2
    assert "importances" not in html  # LinearRegression has none


def test_artifact_from_before_importances_renders(model_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "iris"
    shutil.copytree(model_dir, old)
    manifest_path = old / MANIFEST_NAME
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    del data["feature_importances"]
    for key in ("per_class", "confusion_matrix"):
        del data["metrics"][key]
    manifest_path.write_text(json.dumps(data), encoding="utf-8")
    page = Page(_html(_client(old).get("/ui/iris")))
    assert page.svg_labels == []
    assert "per-class" not in page.tables and "confusion" not in page.tables
    assert "metrics" in page.tables


# --- /ui/census: text features as selects, missing cells, the features on the card


@pytest.fixture(scope="module")
def census_page(census_app: Flask) -> Page:
    return Page(_html(census_app.test_client().get("/ui/census")))


def test_text_features_with_categories_are_selects(census_page: Page, census_dir: Path) -> None:
    first_row = read_manifest(census_dir).sample["inputs"][0]
    selects = census_page.find("select")
    assert [s["data-feature"] for s in selects] == ["workclass", "education", "sex"]
    options = [(a.get("value"), "selected" in a) for t, a in census_page.elements if t == "option"]
    by_feature = dict(zip(CENSUS_FEATURES, first_row, strict=True))
    for select in selects:
        assert (select["data-kind"], select["data-nullable"]) == ("text", "true")
        assert census_page.labels[select["id"]] == select["data-feature"]
        assert census_page.by_id(f"{select['id']}-hint")
    # the first training row is selected
    chosen = [v for v, selected in options if selected]
    assert chosen == [by_feature[n] for n in ("workclass", "education", "sex")]


def test_a_nullable_select_starts_with_missing(census_app: Flask) -> None:
    html = _html(census_app.test_client().get("/ui/census"))
    workclass = html[html.index('data-feature="workclass"') : html.index("</select>")]
    values = re.findall(r'<option value="([^"]*)"', workclass)
    assert values == ["", "Federal-gov", "Local-gov", "Private", "Self-emp"]
    assert ">(missing)</option>" in workclass
    assert "4 categories seen in training; unseen categories: ignored" in html


def test_census_numbers_may_be_left_empty(census_page: Page) -> None:
    boxes = census_page.find("input", type="text")
    assert [(b["data-feature"], b["data-kind"], b["data-nullable"]) for b in boxes] == [
        ("age", "integer", "true"),
        ("hours_per_week", "number", "true"),
        ("capital_gain", "number", "true"),
    ]
    age_slider = census_page.by_id("feature-0-range")
    assert (age_slider["min"], age_slider["max"], age_slider["step"]) == ("17", "79", "1")


def test_card_lists_types_and_categories(census_page: Page) -> None:
    rows = census_page.tables["features"]
    assert [text for text, _ in rows[0]] == ["Feature", "Type", "Missing", "Values"]
    table = {row[0][0]: [text for text, _ in row[1:]] for row in rows[1:]}
    assert table["age"] == ["integer", "allowed", "17 to 79 in training"]
    assert table["sex"] == ["text", "allowed", "Female, Male (unseen categories: ignored)"]
    assert table["hours_per_week"] == ["number", "allowed", "12.0 to 66.0 in training"]


def test_iris_card_lists_its_numbers(iris_page: tuple[TestResponse, Page]) -> None:
    rows = iris_page[1].tables["features"]
    assert [row[0][0] for row in rows[1:]] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert [text for text, _ in rows[1]] == [
        "sepal_length",
        "number",
        "no",
        "4.3 to 7.9 in training",
    ]


def test_form_fields_of_each_kind() -> None:
    features = (
        Feature("flag", "bool"),
        Feature(
            "city", "str", nullable=True, categories=("Oslo", "Rome"), unknown_categories="refused"
        ),
        Feature("note", "str"),
        Feature("n", "int64", min=1.0, max=4.0, nullable=True),
    )
    manifest = ModelManifest(
        name="m",
        version=1,
        task="regression",
        estimator="e",
        features=features,
        sha256="0" * 64,
        created="2024-01-01T00:00:00+00:00",
        sample={"inputs": [[True, None, "free", None]], "predictions": [0.0]},
        input="frame",
    )
    flag, city, note, n = form_fields(manifest)
    assert (flag["kind"], flag["options"], flag["value"]) == ("boolean", ["false", "true"], "true")
    assert (city["kind"], city["options"], city["value"]) == ("text", ["Oslo", "Rome"], "")
    assert (city["nullable"], city["unknown"]) == (True, "refused")
    assert (note["kind"], note["options"], note["value"]) == ("text", None, "free")
    assert (n["kind"], n["value"], n["step"], n["nullable"]) == ("integer", "", "1", True)
    bare = form_fields(dataclasses.replace(manifest, sample={}))
    assert [f["value"] for f in bare] == ["", "", "", "2"]  # an integer's middle is whole


# --- switches, keys, errors, files


@pytest.mark.parametrize("how", ["settings", "env"])
def test_ui_off(model_dir: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "settings":
        client = _client(model_dir, ui=False)
    else:
        monkeypatch.setenv("FLASKSERVE_MODEL_DIR", str(model_dir))
        monkeypatch.setenv("FLASKSERVE_POLL_SECONDS", "0")
        monkeypatch.setenv("FLASKSERVE_UI", "false")
        client = create_app().test_client()
    assert_error(client.get("/ui/iris", headers={"Accept": CHROMIUM}), 404)
    response = client.get("/", headers={"Accept": CHROMIUM})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json_body(response)["models"][0]["name"] == "iris"


@pytest.mark.parametrize("path", ["/", "/ui/iris"])
def test_pages_need_a_key_when_keys_are_set(model_dir: Path, path: str) -> None:
    client = _client(model_dir, api_keys=KEY)
    assert_error(client.get(path, headers={"Accept": CHROMIUM}), 401, "API key")
    response = client.get(path, headers={"Accept": CHROMIUM, "X-API-Key": KEY})
    assert response.status_code == 200
    assert response.mimetype == "text/html"


@pytest.mark.parametrize("accept", [CHROMIUM, "application/json"], ids=["browser", "json"])
def test_unknown_model_is_a_json_404(client: FlaskClient, accept: str) -> None:
    assert_error(client.get("/ui/nonexistent", headers={"Accept": accept}), 404, "nonexistent")


@pytest.mark.parametrize(
    ("path", "mimetypes"),
    [
        ("/ui/static/ui.js", {"text/javascript", "application/javascript"}),
        ("/ui/static/ui.css", {"text/css"}),
    ],
    ids=["js", "css"],
)
def test_static_files(client: FlaskClient, path: str, mimetypes: set[str]) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype in mimetypes
    text = response.get_data(as_text=True)
    response.close()
    # nothing fetched from another server (the SVG namespace is a name, not a fetch)
    assert "https://" not in text
    assert text.replace("http://www.w3.org/2000/svg", "").count("http://") == 0


def test_page_urls_follow_the_script_root(client: FlaskClient) -> None:
    page = Page(_html(client.get("/ui/iris", base_url="http://localhost/ml")))
    assert [a["src"] for a, _ in page.scripts if "src" in a] == ["/ml/ui/static/ui.js"]
    data = page.model_data()
    assert data["predict_url"] == "/ml/predict/iris"
    assert data["explain_url"] == "/ml/explain/iris"
    assert data["stats_url"] == "/ml/model/iris/stats"


# --- the helpers, without an app


def _manifest(*columns: list[float], sample: bool = True) -> ModelManifest:
    features = tuple(
        Feature(f"f{i}", min=min(c), max=max(c)) if sample else Feature(f"f{i}")
        for i, c in enumerate(columns)
    )
    rows = [list(row) for row in zip(*columns, strict=True)]
    return ModelManifest(
        name="m",
        version=1,
        task="regression",
        estimator="sklearn.linear_model.LinearRegression",
        features=features,
        sha256="0" * 64,
        created="2024-01-01T00:00:00+00:00",
        sample={"inputs": rows, "predictions": [0.0] * len(rows)} if sample else {},
    )


@pytest.mark.parametrize(
    ("values", "step"),
    [
        ([1.0, 5.0, 30.0], "1"),
        ([-3.0, 0.0, 12.0], "1"),
        ([4.3, 7.9, 5.1], "0.1"),
        ([0.25, 1.5, 2.0], "0.01"),
        ([0.30000000000000004, 1.0], "0.1"),  # float noise is not a decimal of the data
        ([1e-7, 0.5], "0.0001"),
        ([0.123456789, 1.0], "0.0001"),
    ],
    ids=["integers", "negative-integers", "tenths", "hundredths", "noise", "tiny", "capped"],
)
def test_input_step(values: list[float], step: str) -> None:
    manifest = _manifest(values)
    assert input_step(manifest.features[0], manifest) == step


def test_input_step_of_iris(iris_manifest: ModelManifest) -> None:
    assert {input_step(f, iris_manifest) for f in iris_manifest.features} == {"0.1"}


def test_large_integers_keep_their_digits_and_step() -> None:
    manifest = _manifest([123456789012.0, 5.0])
    (field,) = form_fields(manifest)
    assert field["value"] == "123456789012"
    assert field["step"] == "1"


def test_form_fields_format_and_fall_back() -> None:
    fields = form_fields(_manifest([5.1000000000000005, 4.0], [3.0, 2.5]))
    assert [(f["name"], f["id"], f["value"]) for f in fields] == [
        ("f0", "feature-0", "5.1"),
        ("f1", "feature-1", "3"),
    ]
    assert (fields[0]["min"], fields[0]["max"]) == (4.0, 5.1000000000000005)
    bare = form_fields(_manifest([1.0], sample=False))
    assert [(f["value"], f["min"], f["max"]) for f in bare] == [("", None, None)]


def test_model_card_helper() -> None:
    manifest = _manifest([1.0, 2.0])
    card = model_card(manifest)
    feature = {"name": "f0", "type": "number", "dtype": "float64", "nullable": False}
    assert card == {
        "headline": {},
        "per_class": {},
        "confusion": None,
        "importances": [],
        "features": [{**feature, "min": 1.0, "max": 2.0}],
        "explanation": None,  # saved before explanations: no field
    }
    metrics = {"accuracy": 0.5, "ok": True, "note": "text", "confusion_matrix": [[1, 0], [3, 4]]}
    classified = ModelManifest(
        **{
            **manifest.to_dict(),
            "features": manifest.features,
            "task": "classification",
            "labels": (0, 1),
            "class_names": ("a", "b"),
            "metrics": metrics,
            "feature_importances": {"f0": 0.25, "f1": 0.75},
        }
    )
    card = model_card(classified)
    assert card["headline"] == {"accuracy": 0.5}  # not bools, strings or tables
    assert card["confusion"] == {
        "names": ["a", "b"],
        "rows": [
            {"name": "a", "cells": [{"count": 1, "shade": 1}, {"count": 0, "shade": 0}]},
            {"name": "b", "cells": [{"count": 3, "shade": 3}, {"count": 4, "shade": 4}]},
        ],
    }
    assert [(b["name"], b["width"]) for b in card["importances"]] == [("f1", 100.0), ("f0", 33.33)]


@pytest.mark.parametrize(
    "matrix",
    [[[1, 0]], "not a list", None, [[0, 0], [0, 0], [0, 0]]],
    ids=["too-few-rows", "string", "none", "too-many-rows"],
)
def test_model_card_ignores_a_matrix_that_does_not_fit(matrix: object) -> None:
    manifest = _manifest([1.0, 2.0])
    classified = ModelManifest(
        **{
            **manifest.to_dict(),
            "features": manifest.features,
            "class_names": ("a", "b"),
            "metrics": {"confusion_matrix": matrix},
        }
    )
    assert model_card(classified)["confusion"] is None
