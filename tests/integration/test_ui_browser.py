"""The web page driven in headless Chromium against a real gunicorn server.

Needs Debian's ``chromium`` and ``chromium-driver`` packages (``.ci/run`` installs
them): without them each test fails in CI and is skipped elsewhere, naming the missing
program (``conftest.require_component``). ``UPDATE_SCREENSHOTS=1``
also copies the screenshot this test takes to ``docs/ui.png``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import FLASKSERVE, TUTORIAL_ROW, require_component
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait
from sklearn.neighbors import KNeighborsClassifier

from flaskserve.artifact import read_manifest
from flaskserve.packaging import save_model
from flaskserve.training import load_iris_dataset
from liveserver import LiveServer, start_server

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "ui.png"
WAIT_S = 15

pytestmark = pytest.mark.integration
WHY = "the web page's tests drive it (Debian: apt-get install chromium chromium-driver)"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium = require_component("chromium", WHY)
    chromedriver = require_component("chromedriver", WHY)
    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


@pytest.fixture()
def page(browser: WebDriver, live_server: LiveServer) -> WebDriver:
    # reading the log empties it: each test starts with a clean one
    browser.get_log("browser")  # type: ignore[no-untyped-call]
    browser.get(f"{live_server.url}/ui/iris")
    return browser


def field(driver: WebDriver, name: str) -> WebElement:
    """The text box a person finds by its visible label."""
    label = driver.find_element(By.XPATH, f"//label[normalize-space()='{name}']")
    return driver.find_element(By.ID, str(label.get_attribute("for")))


def type_into(driver: WebDriver, name: str, text: str) -> None:
    box = field(driver, name)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text)


def prediction_is(driver: WebDriver, expected: str) -> str:
    wait = WebDriverWait(driver, WAIT_S)
    wait.until(lambda d: d.find_element(By.ID, "prediction").text == expected)
    return str(driver.find_element(By.ID, "prediction").text)


def probability_bars(driver: WebDriver) -> dict[str, float]:
    bars = driver.find_elements(By.CSS_SELECTOR, "#proba-chart rect.bar")
    return {
        str(bar.get_attribute("data-class")): float(str(bar.get_attribute("data-probability")))
        for bar in bars
    }


def predict_tutorial_row(driver: WebDriver) -> None:
    for name, value in TUTORIAL_ROW.items():
        type_into(driver, name, str(value))
    driver.find_element(By.XPATH, "//button[normalize-space()='Predict']").click()


def shown_probability(driver: WebDriver, class_name: str) -> float:
    """The probability the page writes beside *class_name*'s bar ("95.3%" is 0.953)."""
    labels = driver.find_elements(By.CSS_SELECTOR, "#proba-chart text.label")
    values = driver.find_elements(By.CSS_SELECTOR, "#proba-chart text.value")
    shown = {label.text: value.text for label, value in zip(labels, values, strict=True)}
    assert shown[class_name].endswith("%"), shown
    return float(shown[class_name].removesuffix("%")) / 100


def explanation_chart(driver: WebDriver) -> tuple[str, list[tuple[str, str, str]], str]:
    """The contributions chart as a person reads it, once it is drawn: the base value's text,
    each (column, its signed contribution's text, its bar's class) in order, the output's."""
    chart = driver.find_element(By.ID, "explain-chart")
    WebDriverWait(driver, WAIT_S).until(lambda d: chart.is_displayed())
    texts = chart.find_elements(By.CSS_SELECTOR, "text.value")
    roles = [t.get_attribute("data-role") for t in texts]
    assert roles == ["base", *["contribution"] * (len(texts) - 2), "output"], roles
    names = [t.text for t in chart.find_elements(By.CSS_SELECTOR, "text.label")]
    assert (names[0], names[-1]) == ("base value", "output"), names
    bars = [str(b.get_attribute("class")) for b in chart.find_elements(By.CSS_SELECTOR, "rect.bar")]
    steps = list(zip(names[1:-1], [t.text for t in texts[1:-1]], bars, strict=True))
    return texts[0].text, steps, texts[-1].text


def test_the_tutorial_row_reads_virginica_with_three_bars(page: WebDriver) -> None:
    predict_tutorial_row(page)

    assert prediction_is(page, "virginica") == "virginica"
    bars = probability_bars(page)
    assert list(bars) == ["setosa", "versicolor", "virginica"]
    assert math.isclose(sum(bars.values()), 1.0, abs_tol=1e-6)
    assert max(bars, key=lambda name: bars[name]) == "virginica"
    assert page.find_element(By.ID, "proba-chart").is_displayed()
    label = str(page.find_element(By.ID, "proba-chart").get_attribute("aria-label"))
    assert "virginica" in label and "%" in label


def test_the_tutorial_row_is_explained_up_to_its_probability(page: WebDriver) -> None:
    """From the base value, each contribution as shown adds up to the probability shown."""
    predict_tutorial_row(page)
    prediction_is(page, "virginica")
    base, steps, output = explanation_chart(page)

    assert sorted(name for name, _, _ in steps) == sorted(TUTORIAL_ROW)
    values = [float(text) for _, text, _ in steps]
    assert [abs(v) for v in values] == sorted((abs(v) for v in values), reverse=True)
    for (name, text, bar), value in zip(steps, values, strict=True):
        # the sign is written, and the bar's colour (its class) says it too
        assert text[0] == ("-" if value < 0 else "+"), (name, text)
        assert bar.split() == ["bar", "down" if value < 0 else "up"], (name, bar)
    probability = shown_probability(page, "virginica")
    assert math.isclose(probability, 0.953, abs_tol=5e-4)
    # each number shown is rounded to the chart's decimals, the probability to 0.1%
    half = 0.5 * 10 ** -len(base.partition(".")[2]) + 1e-9
    slack = (len(steps) + 1) * half + 0.0005
    assert math.isclose(float(base) + sum(values), probability, abs_tol=slack), (base, steps)
    assert math.isclose(float(output), probability, abs_tol=half + 0.0005), output
    caption = page.find_element(By.ID, "explain-caption").text
    assert "probability of virginica" in caption, caption
    assert f"from the base value {base}" in caption and f"to {output}" in caption, caption
    label = str(page.find_element(By.ID, "explain-chart").get_attribute("aria-label"))
    assert label.startswith("Contributions to the probability of virginica: base value"), label
    assert not page.find_element(By.ID, "explain-reason").is_displayed()
    _save_screenshot(page)


def test_a_non_number_shows_the_fields_own_error(page: WebDriver) -> None:
    type_into(page, "sepal_width", "abc")
    field(page, "sepal_width").send_keys(Keys.ENTER)  # the keyboard submits the form

    error = page.find_element(By.CSS_SELECTOR, "[data-error-for='sepal_width']")
    WebDriverWait(page, WAIT_S).until(lambda d: error.is_displayed())
    assert "sepal_width" in error.text and "expected a number" in error.text
    assert field(page, "sepal_width").get_attribute("aria-invalid") == "true"
    others = page.find_elements(
        By.CSS_SELECTOR, "[data-error-for]:not([data-error-for='sepal_width'])"
    )
    assert not any(e.is_displayed() for e in others)

    type_into(page, "sepal_width", "3.0")
    page.find_element(By.ID, "predict-button").click()
    _any_class(page)
    assert not error.is_displayed()


def test_the_page_works_from_the_keyboard_alone(page: WebDriver) -> None:
    page.find_element(By.TAG_NAME, "body").click()
    focused_ids = []
    for _ in range(30):  # Tab through the page until the button has the focus
        page.switch_to.active_element.send_keys(Keys.TAB)
        focused = page.switch_to.active_element
        focused_ids.append(focused.get_attribute("id"))
        if focused.get_attribute("id") == "predict-button":
            break
    assert focused_ids[-1] == "predict-button", focused_ids
    assert {"feature-0", "feature-1", "feature-2", "feature-3"} <= set(focused_ids)
    page.switch_to.active_element.send_keys(Keys.ENTER)
    assert prediction_is(page, _any_class(page)) in ("setosa", "versicolor", "virginica")


def test_every_input_has_a_label(page: WebDriver) -> None:
    unlabelled = page.execute_script(
        "return Array.from(document.querySelectorAll('input, button'))"
        ".filter(e => e.tagName === 'BUTTON' ? !e.textContent.trim() : e.labels.length === 0)"
        ".map(e => e.id || e.outerHTML)"
    )
    assert unlabelled == []


def test_fits_a_phone_screen(page: WebDriver) -> None:
    # headless windows are at least 500 px wide: emulate the phone's viewport instead
    metrics = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
    page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    page.refresh()
    overflow = page.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    try:
        assert page.execute_script("return window.innerWidth") == 390
        assert overflow <= 0
        page.find_element(By.ID, "predict-button").click()
        prediction_is(page, _any_class(page))
    finally:
        page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_loads_nothing_from_another_origin(page: WebDriver, live_server: LiveServer) -> None:
    WebDriverWait(page, WAIT_S).until(lambda d: d.find_element(By.ID, "stat-requests").text != "…")
    loaded = page.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded, "the page loaded no resources at all"
    assert all(url.startswith(live_server.url + "/") for url in loaded), loaded
    errors = [
        entry
        for entry in page.get_log("browser")  # type: ignore[no-untyped-call]
        if entry["level"] == "SEVERE" and "favicon" not in entry["message"]
    ]
    assert errors == []  # a CSP violation or a script error shows here


def test_live_figures_count_the_pages_requests(page: WebDriver) -> None:
    page.find_element(By.ID, "predict-button").click()
    prediction_is(page, _any_class(page))
    WebDriverWait(page, WAIT_S).until(
        lambda d: d.find_element(By.ID, "stat-requests").text not in ("…", "0")
    )
    latency = page.find_element(By.ID, "stat-latency").text
    assert latency.count("ms") == 3, latency


def test_the_index_links_to_the_model_page(browser: WebDriver, live_server: LiveServer) -> None:
    browser.get(live_server.url + "/")
    browser.find_element(By.LINK_TEXT, "iris").click()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.current_url.endswith("/ui/iris"))
    assert field(browser, "petal_width").get_attribute("value")


@pytest.fixture(scope="module")
def census_server(census_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("census-server") / "serve.log"
    args = [FLASKSERVE, "serve", str(census_dir), "--port", "{port}", "--workers", "1"]
    server = start_server(args, log)
    yield server.url
    server.stop()


def test_a_typed_model_sends_text_and_null(
    browser: WebDriver, census_server: str, census_dir: Path, census_pipeline: Any
) -> None:
    """Pick a category, leave a number that may be missing empty: the pipeline's own answer."""
    browser.get(f"{census_server}/ui/census")
    Select(field(browser, "education")).select_by_visible_text("HS-grad")
    Select(field(browser, "workclass")).select_by_visible_text("(missing)")
    type_into(browser, "age", "30")
    type_into(browser, "hours_per_week", "")
    browser.find_element(By.ID, "predict-button").click()

    names = read_manifest(census_dir).feature_names
    row = dict(zip(names, read_manifest(census_dir).sample["inputs"][0], strict=True))
    # a missing cell as the server builds it: NaN, in a text column too (not None)
    row.update(age=30, education="HS-grad", workclass=math.nan, hours_per_week=math.nan)
    frame = pd.DataFrame([row])
    expected = census_pipeline.predict(frame)[0]
    assert prediction_is(browser, expected) == expected
    bars = probability_bars(browser)
    assert list(bars) == list(census_pipeline.classes_)
    probabilities = census_pipeline.predict_proba(frame)[0].tolist()
    # float32 where a compiled runtime answers; a cell sent wrongly moves them far more
    assert list(bars.values()) == pytest.approx(probabilities, abs=1e-6), bars


@pytest.fixture(scope="module")
def unexplainable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A nearest-neighbours iris model: it predicts, but has no exact explanation (501)."""
    out = tmp_path_factory.mktemp("models") / "knn"
    iris = load_iris_dataset()
    save_model(
        KNeighborsClassifier().fit(iris.features, iris.target),
        out,
        sample=iris.features,
        feature_names=iris.feature_names,
        class_names=iris.class_names,
        compile=False,
    )
    args = [FLASKSERVE, "serve", str(out), "--port", "{port}", "--workers", "1"]
    server = start_server(args, out.with_name("serve.log"))
    yield server.url
    server.stop()


def test_a_model_without_explanations_shows_why_and_still_predicts(
    browser: WebDriver, unexplainable_server: str
) -> None:
    browser.get_log("browser")  # type: ignore[no-untyped-call]
    browser.get(f"{unexplainable_server}/ui/knn")
    predict_tutorial_row(browser)

    assert prediction_is(browser, "virginica") == "virginica"
    reason = browser.find_element(By.ID, "explain-reason")
    WebDriverWait(browser, WAIT_S).until(lambda d: reason.is_displayed())
    assert reason.text.startswith("No explanation: KNeighborsClassifier has no exact"), reason.text
    assert not browser.find_element(By.ID, "explain-chart").is_displayed()
    assert browser.find_element(By.ID, "proba-chart").is_displayed()
    assert math.isclose(sum(probability_bars(browser).values()), 1.0, abs_tol=1e-6)
    card = browser.find_element(By.ID, "explain-card-reason").text
    assert card.startswith("Not explainable: KNeighborsClassifier"), card
    errors = [
        entry["message"]
        for entry in browser.get_log("browser")  # type: ignore[no-untyped-call]
        if entry["level"] == "SEVERE" and "favicon" not in entry["message"]
    ]
    # the browser logs the 501 itself as a failed load; anything else is a script error
    assert [m for m in errors if not ("/explain/knn" in m and "501" in m)] == [], errors


def _any_class(driver: WebDriver) -> str:
    """Whatever class the page settles on (the form holds a real training row)."""
    output = driver.find_element(By.ID, "prediction")
    WebDriverWait(driver, WAIT_S).until(
        lambda d: output.text in ("setosa", "versicolor", "virginica")
    )
    return str(output.text)


def _save_screenshot(driver: WebDriver) -> None:
    png = driver.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG")
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.write_bytes(png)
