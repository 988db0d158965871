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

from flaskserve.artifact import read_manifest
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


def test_the_tutorial_row_reads_virginica_with_three_bars(page: WebDriver) -> None:
    for name, value in TUTORIAL_ROW.items():
        type_into(page, name, str(value))
    page.find_element(By.XPATH, "//button[normalize-space()='Predict']").click()

    assert prediction_is(page, "virginica") == "virginica"
    bars = probability_bars(page)
    assert list(bars) == ["setosa", "versicolor", "virginica"]
    assert math.isclose(sum(bars.values()), 1.0, abs_tol=1e-6)
    assert max(bars, key=lambda name: bars[name]) == "virginica"
    assert page.find_element(By.ID, "proba-chart").is_displayed()
    label = str(page.find_element(By.ID, "proba-chart").get_attribute("aria-label"))
    assert "virginica" in label and "%" in label
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
