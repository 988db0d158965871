"""``flaskserve import MLFLOW_DIR|models:/...``: the command's side of
:mod:`flaskserve.mlflow_import` (its argument type, its messages and exit code)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click


class ModelSource(click.Path):
    """A file or directory that exists, or an MLflow ``models:/``/``runs:/`` URI as text."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.startswith(("models:/", "runs:/")):
            return value
        return super().convert(value, param, ctx)


class ImportFailed(click.ClickException):
    """An MLflow model that cannot be imported: one line, exit code 2 like every refusal."""

    exit_code = 2


def import_mlflow(
    source: str,
    features: Sequence[str] | None,
    class_names: Sequence[str] | None,
    name: str | None,
    out: Path | None,
    trust_pickle: bool,
    pickle_warning: str,
) -> None:
    """Import *source* and say where the artifact went (and what was made up on the way).

    :raises ImportFailed: the model cannot be imported; the message says why.
    """
    from .errors import ArtifactError
    from .mlflow_import import PickleRequired, import_model

    try:
        imported = import_model(
            source,
            out=out,
            name=name,
            feature_names=features,
            class_names=class_names,
            trust_pickle=trust_pickle,
        )
    except PickleRequired as e:
        raise ImportFailed(f"{e.message}; {pickle_warning}") from None
    except OSError as e:  # before ValueError's kin: the artifact could not be written
        raise ImportFailed(f"cannot write the artifact: {e}") from None
    except ArtifactError as e:
        raise ImportFailed(e.message) from None
    except ValueError as e:  # the model and its sample or names do not fit together
        raise ImportFailed(f"{source}: {e}") from None
    for note in imported.notes:
        click.echo(f"note: {note}", err=True)
    manifest = imported.manifest
    click.echo(
        f"saved {manifest.name} v{manifest.version} ({manifest.estimator}) to {imported.out}"
    )
