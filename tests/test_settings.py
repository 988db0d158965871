"""Tests for flaskserve.settings: FLASKSERVE_* variables and overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flaskserve.errors import SettingsError
from flaskserve.settings import DEFAULT_MODEL_DIR, Settings

DEFAULTS = Settings()


def test_defaults() -> None:
    assert DEFAULTS.model_dir == DEFAULT_MODEL_DIR == Path("build/iris")
    assert DEFAULTS.max_body_bytes == 10 * 1024 * 1024
    assert DEFAULTS.max_rows == 10_000


def test_empty_environment_gives_defaults() -> None:
    assert Settings.from_env({}) == DEFAULTS


def test_reads_every_variable() -> None:
    settings = Settings.from_env(
        {
            "FLASKSERVE_MODEL_DIR": "/srv/models/iris",
            "FLASKSERVE_MAX_BODY_BYTES": "2048",
            "FLASKSERVE_MAX_ROWS": "500",
        }
    )
    assert settings == Settings(
        model_dir=Path("/srv/models/iris"), max_body_bytes=2048, max_rows=500
    )
    assert isinstance(settings.model_dir, Path)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("10_000", 10_000), ("1_048_576", 1_048_576), (" 7 ", 7), ("+3", 3), ("1", 1)],
    ids=["underscore", "underscores", "spaces", "plus-sign", "one"],
)
def test_integer_spellings(raw: str, value: int) -> None:
    assert Settings.from_env({"FLASKSERVE_MAX_ROWS": raw}).max_rows == value
    assert Settings.from_env({"FLASKSERVE_MAX_BODY_BYTES": raw}).max_body_bytes == value


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASKSERVE_MAX_ROWS", "42")
    monkeypatch.setenv("FLASKSERVE_MODEL_DIR", "models/x")
    settings = Settings.from_env()
    assert settings.max_rows == 42
    assert settings.model_dir == Path("models/x")


def test_autouse_fixture_cleared_the_environment() -> None:
    assert Settings.from_env() == DEFAULTS


def test_overrides_win_over_the_environment() -> None:
    environ = {
        "FLASKSERVE_MODEL_DIR": "from-env",
        "FLASKSERVE_MAX_BODY_BYTES": "100",
        "FLASKSERVE_MAX_ROWS": "5",
    }
    settings = Settings.from_env(environ, model_dir=Path("from-arg"), max_rows=9)
    assert settings.model_dir == Path("from-arg")
    assert settings.max_rows == 9
    assert settings.max_body_bytes == 100


def test_none_overrides_are_ignored() -> None:
    environ = {"FLASKSERVE_MAX_ROWS": "5", "FLASKSERVE_MODEL_DIR": "from-env"}
    settings = Settings.from_env(environ, max_rows=None, model_dir=None)
    assert settings.max_rows == 5
    assert settings.model_dir == Path("from-env")


def test_other_variables_are_ignored() -> None:
    environ = {"FLASKSERVE_UNKNOWN": "x", "MAX_ROWS": "abc", "flaskserve_max_rows": "abc"}
    assert Settings.from_env(environ) == DEFAULTS


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("FLASKSERVE_MAX_ROWS", "abc"),
        ("FLASKSERVE_MAX_ROWS", ""),
        ("FLASKSERVE_MAX_ROWS", "1.5"),
        ("FLASKSERVE_MAX_ROWS", "1e3"),
        ("FLASKSERVE_MAX_ROWS", "_"),
        ("FLASKSERVE_MAX_BODY_BYTES", "10MB"),
        ("FLASKSERVE_MAX_BODY_BYTES", "0x10"),
    ],
    ids=["word", "empty", "decimal", "exponent", "underscore-only", "unit", "hex"],
)
def test_unparsable_values_name_the_variable_and_value(key: str, raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({key: raw})
    assert caught.value.message == f"{key}: expected a positive integer, got {raw!r}"


def test_bad_max_rows_message() -> None:
    with pytest.raises(SettingsError, match=re.escape("FLASKSERVE_MAX_ROWS")) as caught:
        Settings.from_env({"FLASKSERVE_MAX_ROWS": "abc"})
    assert "'abc'" in caught.value.message


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("FLASKSERVE_MAX_ROWS", "0"),
        ("FLASKSERVE_MAX_ROWS", "-1"),
        ("FLASKSERVE_MAX_BODY_BYTES", "0"),
        ("FLASKSERVE_MAX_BODY_BYTES", "-1_000"),
    ],
    ids=["rows-zero", "rows-negative", "body-zero", "body-negative"],
)
def test_non_positive_values_are_refused(key: str, raw: str) -> None:
    with pytest.raises(SettingsError, match="expected a positive integer") as caught:
        Settings.from_env({key: raw})
    assert key in caught.value.message
    assert repr(raw) in caught.value.message


@pytest.mark.parametrize(("raw", "value"), [("0", 0), ("5_000", 5_000)], ids=["off", "rows"])
def test_parallel_rows_may_be_zero(raw: str, value: int) -> None:
    assert DEFAULTS.parallel_rows == 1_000
    assert Settings.from_env({"FLASKSERVE_PARALLEL_ROWS": raw}).parallel_rows == value


@pytest.mark.parametrize("raw", ["-1", "many"])
def test_bad_parallel_rows_are_named(raw: str) -> None:
    with pytest.raises(SettingsError, match=f"FLASKSERVE_PARALLEL_ROWS: expected .*{raw!r}"):
        Settings.from_env({"FLASKSERVE_PARALLEL_ROWS": raw})
    with pytest.raises(SettingsError, match="parallel_rows: expected 0 \\(off\\)"):
        Settings(parallel_rows=-1)


def test_non_positive_variable_is_named() -> None:
    with pytest.raises(SettingsError, match="FLASKSERVE_MAX_ROWS"):
        Settings.from_env({"FLASKSERVE_MAX_ROWS": "0"})


@pytest.mark.parametrize(
    "kwargs",
    [{"max_rows": 0}, {"max_body_bytes": -5}],
    ids=["rows-zero", "body-negative"],
)
def test_constructor_refuses_non_positive_values(kwargs: dict[str, int]) -> None:
    with pytest.raises(SettingsError, match="expected a positive integer"):
        Settings(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="expected a positive integer"):
        Settings.from_env({}, **kwargs)


@pytest.mark.parametrize("raw", ["", "   "], ids=["empty", "blank"])
def test_empty_model_dir_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"FLASKSERVE_MODEL_DIR": raw})
    assert caught.value.message == "FLASKSERVE_MODEL_DIR: expected a path, got an empty value"


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        DEFAULTS.max_rows = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("environ", "field", "value"),
    [
        ({"FLASKSERVE_BATCHING": "off"}, "batching", False),
        ({"FLASKSERVE_BATCHING": "1"}, "batching", True),
        ({"FLASKSERVE_BATCH_WAIT_MS": "2.5"}, "batch_wait_ms", 2.5),
        ({"FLASKSERVE_BATCH_MAX_ROWS": "64"}, "batch_max_rows", 64),
        ({"FLASKSERVE_RUNTIME": "sklearn"}, "runtime", "sklearn"),
        ({"FLASKSERVE_POLL_SECONDS": "0"}, "poll_seconds", 0.0),
        ({"FLASKSERVE_DEFAULT_MODEL": "iris"}, "default_model", "iris"),
    ],
    ids=[
        "batching-off",
        "batching-on",
        "wait",
        "max-rows",
        "runtime",
        "no-polling",
        "default-model",
    ],
)
def test_serving_options_from_environment(
    environ: dict[str, str], field: str, value: object
) -> None:
    assert getattr(Settings.from_env(environ), field) == value


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"FLASKSERVE_BATCHING": "maybe"},
            "FLASKSERVE_BATCHING: expected true or false, got 'maybe'",
        ),
        (
            {"FLASKSERVE_BATCH_WAIT_MS": "-1"},
            "FLASKSERVE_BATCH_WAIT_MS: expected 0 or more, got '-1'",
        ),
        (
            {"FLASKSERVE_POLL_SECONDS": "soon"},
            "FLASKSERVE_POLL_SECONDS: expected a number, got 'soon'",
        ),
        ({"FLASKSERVE_RUNTIME": "fast"}, "FLASKSERVE_RUNTIME: expected auto, sklearn or compiled"),
        (
            {"FLASKSERVE_ADMIN_TOKEN": "short"},
            "FLASKSERVE_ADMIN_TOKEN: expected at least 16 characters",
        ),
    ],
    ids=["batching", "wait", "poll", "runtime", "token"],
)
def test_bad_serving_options_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    assert caught.value.message.startswith(message)
