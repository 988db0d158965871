"""The ``flaskserve`` command: train, import, serve, quickstart, batch."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .artifact import MANIFEST_NAME, ModelManifest, untrusted_types
from .batch.options import DEFAULT_CHUNK_ROWS, ENGINES, FORMATS
from .cli_serve import RUNTIME_OPTION, monitor_options, run_server, server_options
from .errors import ArtifactError, DatasetError, FlaskServeError
from .mlflow_command import ModelSource
from .packaging import save_model
from .settings import DEFAULT_MODEL_DIR
from .version import __version__

F = TypeVar("F", bound=Callable[..., Any])
_PICKLE_WARNING = (
    "refusing to read a pickle without --trust-pickle. Loading a pickle runs any code its "
    "author put in it (via __reduce__), so a model file from an unknown source can take over "
    "this machine. Pass --trust-pickle only for a file you or your team created; flaskserve "
    "converts it once to the skops format, which is loaded without running code."
)


@click.group()
@click.version_option(__version__, prog_name="flaskserve")
def main() -> None:
    """Train scikit-learn models and serve them over HTTP, safely."""


@main.command()
@click.argument("csv_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", help="The CSV column to predict (required with a CSV file).")
@click.option("--name", help="The model's name (default: iris, or the CSV file's stem).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Artifact directory.",
)
def train(csv_file: Path | None, target: str | None, name: str | None, out: Path | None) -> None:
    """Train the tutorial's random forest on iris, or on CSV_FILE, and save an artifact."""
    _train(csv_file, target, name, out)


def _train(
    csv_file: Path | None, target: str | None, name: str | None, out: Path | None
) -> ModelManifest:
    from . import training

    if csv_file is None:
        if target is not None:
            raise click.UsageError(
                "--target needs a CSV file; without one the iris data set is used"
            )
        dataset, name = training.load_iris_dataset(), name or "iris"
    else:
        if target is None:
            raise click.UsageError("--target COLUMN is required with a CSV file")
        try:
            dataset = training.read_csv_dataset(csv_file, target)
        except DatasetError as e:
            raise click.BadParameter(e.message, param_hint="CSV_FILE") from None
        name = name or csv_file.stem
    destination = out or Path("build") / name
    try:
        result = training.train(dataset, destination, name=name)
    except OSError as e:
        raise click.BadParameter(f"cannot write {destination}: {e}", param_hint="--out") from None
    click.echo(result.report, nl=False)
    click.echo(
        f"saved {result.manifest.name} v{result.manifest.version} to {destination}",
        err=True,
    )
    return result.manifest


@main.command("import")
@click.argument(
    "pickle_file",
    metavar="PICKLE_FILE|MLFLOW_DIR|MODEL_URI",
    type=ModelSource(exists=True, path_type=Path),
)
@click.option("--features", help="Feature names in column order, comma-separated.")
@click.option("--class-names", help="Class names in the order of classes_, comma-separated.")
@click.option("--name", help="The model's name (default: the --out directory's name).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"[default: {DEFAULT_MODEL_DIR}; an MLflow model: build/<name>]",
)
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="I made this pickle and accept that loading it runs its code.",
)
def import_pickle(
    pickle_file: Path | str,
    features: str | None,
    class_names: str | None,
    name: str | None,
    out: Path | None,
    trust_pickle: bool,
) -> None:
    """Convert a pickle (build/model.pkl), an MLflow model dir or models:/ URI into an artifact."""
    from .booster_import import import_if_native
    from .pickles import load_trusted_pickle

    if isinstance(pickle_file, str) or pickle_file.is_dir():
        from .mlflow_command import import_mlflow

        split = _split(features), _split(class_names)
        import_mlflow(str(pickle_file), *split, name, out, trust_pickle, _PICKLE_WARNING)
        return
    import_if_native(pickle_file, features, class_names, name, out)  # XGBoost, LightGBM: ends
    if features is None:
        raise click.UsageError("Missing option '--features'.")
    out = out or DEFAULT_MODEL_DIR
    if not trust_pickle:
        raise click.UsageError(_PICKLE_WARNING)
    try:
        estimator = load_trusted_pickle(pickle_file, trust_pickle=True)
        refused = untrusted_types(estimator)
        if refused:
            raise ValueError(f"flaskserve serve would refuse these types: {', '.join(refused)}")
        manifest = save_model(
            estimator,
            out,
            feature_names=_split(features),
            class_names=_split(class_names),
            name=name,
        )
    except OSError as e:  # before ValueError's kin: the artifact could not be written
        raise click.BadParameter(f"cannot write {out}: {e}", param_hint="--out") from None
    except (ArtifactError, ValueError) as e:
        raise click.BadParameter(str(e), param_hint="PICKLE_FILE") from None
    click.echo(f"saved {manifest.name} v{manifest.version} ({manifest.estimator}) to {out}")


@main.command()
@click.argument(
    "model_dir", required=False, type=click.Path(path_type=Path), default=DEFAULT_MODEL_DIR
)
@server_options
@click.option("--dev", is_flag=True, help="Use Flask's development server instead of gunicorn.")
@click.option(
    "--debugger", is_flag=True, help="With --dev: the Werkzeug debugger (loopback hosts only)."
)
@click.option(
    "--access-log", is_flag=True, help="Log one JSON line per request (FLASKSERVE_ACCESS_LOG)."
)
@monitor_options
def serve(model_dir: Path, **options: Any) -> None:
    """Serve MODEL_DIR (default build/iris): one artifact, or a <name>/<version>/ repository."""
    run_server(model_dir, **options)


@main.command()
@server_options
def quickstart(**options: Any) -> None:
    """Train the tutorial's iris model into build/iris if missing, then serve it."""
    if not (DEFAULT_MODEL_DIR / MANIFEST_NAME).exists():
        # in a child process: training starts ONNX Runtime's threads (the parity gate), and
        # workers forked from a master holding them abort when they exit
        train = [sys.executable, "-m", "flaskserve", "train", "--out", str(DEFAULT_MODEL_DIR)]
        if subprocess.run(train, check=False).returncode != 0:
            raise click.ClickException("training the tutorial's model failed (see above)")
    run_server(DEFAULT_MODEL_DIR, **options)


@main.command("compile")
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
def compile_command(model_dir: Path) -> None:
    """(Re)build MODEL_DIR's compiled ONNX model and run its parity gate."""
    from .compiler import compile_artifact
    from .parity import gate_summary

    try:
        manifest = compile_artifact(model_dir)
    except ArtifactError as e:
        raise click.BadParameter(e.message, param_hint="MODEL_DIR") from None
    for line in gate_summary(manifest.compiled):
        click.echo(line)


class _BatchFailed(click.ClickException):
    """A batch run that stopped: one line, exit code 2 like every refusal here."""

    exit_code = 2


@main.command()
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("input_file", metavar="INPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The scored file (.csv or .parquet), written whole or not at all.",
)
@click.option("--input-format", type=click.Choice(FORMATS), help="[default: from the suffix]")
@click.option("--output-format", type=click.Choice(FORMATS), help="[default: from the suffix]")
@click.option(
    "--id-column", metavar="COLUMN", help="An input column copied to the output and the rejects."
)
@click.option("--proba", is_flag=True, help="Add proba_<class> columns (classifiers).")
@click.option("--labels", is_flag=True, help="Add a label column with the class names.")
@click.option(
    "--explain",
    is_flag=True,
    help="Add base_value, contrib_<column> and explained_output columns: exact contributions"
    " toward each row's predicted class.",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rows that fail validation, as CSV [default: OUTPUT.rejects.csv].",
)
@click.option(
    "--max-rejects", metavar="N", type=click.IntRange(min=0), help="Stop (exit 2) beyond N rejects."
)
@click.option(
    "--chunk-rows",
    metavar="N",
    type=click.IntRange(min=1),
    default=DEFAULT_CHUNK_ROWS,
    show_default=True,
    help="Rows read and scored at a time: memory is about N x columns x 8 bytes per chunk.",
)
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="With --engine dask: a running scheduler, tcp://HOST:PORT.",
)
@click.option(
    "--workers",
    metavar="N",
    type=click.IntRange(min=1),
    help="With --engine dask and no --scheduler: local worker processes [default: one per core].",
)
@RUNTIME_OPTION
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
def batch(model_dir: Path, input_file: Path, quiet: bool, **options: Any) -> None:
    """Score INPUT (CSV or Parquet) with the model in MODEL_DIR, writing OUTPUT."""
    from .batch import BatchOptions, InputFileError, run_batch

    if options["engine"] != "dask" and (options["scheduler"] or options["workers"]):
        raise click.UsageError("--scheduler and --workers need --engine dask")
    if options["scheduler"] and options["workers"]:
        raise click.UsageError("--workers starts a local cluster; --scheduler uses another one")
    request = BatchOptions(
        model_dir, input_file, runtime=options.pop("runtime") or "auto", **options
    )
    try:
        summary = run_batch(request, progress=not quiet and sys.stderr.isatty())
    except ArtifactError as e:
        raise click.BadParameter(e.message, param_hint="MODEL_DIR") from None
    except InputFileError as e:
        raise click.BadParameter(e.message, param_hint="INPUT") from None
    except FlaskServeError as e:  # BatchError, or the runtime's own errors
        raise _BatchFailed(e.message) from None
    if not quiet:
        click.echo(summary.describe(), err=True)


@main.command("inspect-repository", hidden=True)
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--runtime", default="auto")
def inspect_repository(model_dir: Path, runtime: str) -> None:
    """Load every model in MODEL_DIR and print what would be served, as JSON."""
    from .preflight import inspect

    click.echo(json.dumps(dataclasses.asdict(inspect(model_dir, runtime))))


def _split(values: str | None) -> list[str] | None:
    return None if values is None else [v.strip() for v in values.split(",") if v.strip()]
