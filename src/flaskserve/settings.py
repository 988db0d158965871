"""Server settings: constructor arguments first, then ``FLASKSERVE_*`` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import SettingsError

ENV_PREFIX = "FLASKSERVE_"
DEFAULT_MODEL_DIR = Path("build/iris")


@dataclass(frozen=True)
class Settings:
    """What one server process needs to know.

    :param model_dir: the model artifact directory to serve.
    :param max_body_bytes: largest request body accepted (413 beyond).
    :param max_rows: largest batch accepted in one request (413 beyond).
    """

    model_dir: Path = DEFAULT_MODEL_DIR
    max_body_bytes: int = 10 * 1024 * 1024
    max_rows: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_rows"):
            if getattr(self, name) < 1:
                raise SettingsError(
                    f"{name}: expected a positive integer, got {getattr(self, name)}"
                )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``FLASKSERVE_<FIELD>`` variables, then apply *overrides*.

        :param environ: the variables to read (default: ``os.environ``).
        :raises SettingsError: a variable does not parse; the message names it.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            key = ENV_PREFIX + field.name.upper()
            if key in environ:
                values[field.name] = _parse(key, environ[key], field.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


def _parse(key: str, raw: str, kind: object) -> object:
    if kind in (Path, "Path"):
        if not raw.strip():
            raise SettingsError(f"{key}: expected a path, got an empty value")
        return Path(raw)
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise SettingsError(f"{key}: expected a positive integer, got {raw!r}") from None
    if value < 1:
        raise SettingsError(f"{key}: expected a positive integer, got {raw!r}")
    return value
