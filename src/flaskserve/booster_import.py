"""``flaskserve import FILE`` for a model file that XGBoost or LightGBM wrote themselves.

The file is recognised by its content (:func:`flaskserve.boosters.sniff`), not its
name, and stored in an artifact as it is: nothing is unpickled, so no
``--trust-pickle`` is asked for.
"""

from __future__ import annotations

from pathlib import Path

import click

from .boosters import read_native_file
from .errors import ArtifactError
from .packaging import save_model
from .settings import DEFAULT_MODEL_DIR


class ImportRefused(click.ClickException):
    """One line, ``Error: ...``, and exit code 2, like every refusal of the command line."""

    exit_code = 2


def import_if_native(
    path: Path | str,
    features: str | None,
    class_names: str | None,
    name: str | None,
    out: Path | None,
) -> None:
    """Save *path* as an artifact and end the command, if XGBoost or LightGBM wrote it;
    return for any other file (a pickle).

    Feature names come from the file where it has them, else *features*; class names
    from *class_names* (the classes are ``0..k-1``).

    :raises ImportRefused: a damaged or truncated booster file, its library missing,
        names that do not fit, or an unwritable *out*.
    """
    if isinstance(path, str) or path.is_dir():
        return
    try:
        native = read_native_file(path)
    except ArtifactError as e:
        raise ImportRefused(e.message) from None
    if native is None:
        return
    out = out or DEFAULT_MODEL_DIR
    names = _split(features)
    if names is None and native.feature_names is None:
        raise ImportRefused(f"{path}: the file names no features; pass --features a,b,...")
    try:
        manifest = save_model(
            native.booster, out, feature_names=names, class_names=_split(class_names), name=name
        )
    except OSError as e:
        raise ImportRefused(f"cannot write {out}: {e}") from None
    except ValueError as e:
        raise ImportRefused(f"{path}: {e}") from None
    click.echo(f"saved {manifest.name} v{manifest.version} ({native.library}) to {out}")
    click.get_current_context().exit(0)


def _split(values: str | None) -> list[str] | None:
    return None if values is None else [v.strip() for v in values.split(",") if v.strip()]
