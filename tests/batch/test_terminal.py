"""What ``flaskserve batch`` prints: the progress bar, the summary line, its refusals."""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import FLASKSERVE, TUTORIAL_ROW

from assertions import assert_refused
from flaskserve.cli import main

Invoke = Callable[..., Result]


def write_csv(path: Path, rows: int = 5) -> Path:
    """*rows* copies of the tutorial's row, under a header naming the features."""
    line = ",".join(map(str, TUTORIAL_ROW.values()))
    path.write_text(",".join(TUTORIAL_ROW) + "\n" + (line + "\n") * rows, encoding="utf-8")
    return path


@pytest.fixture()
def invoke() -> Invoke:
    """``invoke(*args)`` runs ``flaskserve batch ARGS``."""
    runner = CliRunner()
    return lambda *args: runner.invoke(main, ["batch", *map(str, args)])


# --- progress --------------------------------------------------------------------------------


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    invoke: Invoke, model_dir: Path, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "in.csv", 30)

    result = invoke(model_dir, path, "-o", tmp_path / "out.csv", "--chunk-rows", 5)

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("read 30 rows: 30 scored, 0 rejected (")


@pytest.mark.parametrize("quiet", [False, True], ids=["bar", "quiet"])
def test_progress_bar_on_a_terminal(model_dir: Path, tmp_path: Path, quiet: bool) -> None:
    pty = pytest.importorskip("pty")
    fcntl = pytest.importorskip("fcntl")
    termios = pytest.importorskip("termios")
    path = write_csv(tmp_path / "in.csv", 100)
    command = [FLASKSERVE, "batch", str(model_dir), str(path), "-o", str(tmp_path / "out.csv")]
    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        done = subprocess.run(
            [*command, "--chunk-rows", "10", *(["--quiet"] if quiet else [])],
            stdin=subprocess.DEVNULL,
            capture_output=False,
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=120,
            check=False,
        )
    finally:
        os.close(terminal)
    shown = _read_all(master).decode()

    assert done.returncode == 0, shown
    assert done.stdout == b""
    if quiet:
        assert shown == ""
    else:
        assert "100%" in shown and "100/100" in shown and "rows/s" in shown, shown
        assert shown.rstrip().splitlines()[-1].startswith("read 100 rows: 100 scored, 0 rejected")


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    except OSError:  # EIO: the terminal's other end is closed
        pass
    finally:
        os.close(fd)
    return b"".join(chunks)


def test_quiet_prints_nothing(invoke: Invoke, model_dir: Path, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", 30)

    result = invoke(model_dir, path, "-o", tmp_path / "out.csv", "--quiet")

    assert result.exit_code == 0, result.output
    assert result.output == ""


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["{model}", "absent.csv", "-o", "out.csv"], ["INPUT", "absent.csv: does not exist"]),
        (["{model}", "in.txt", "-o", "out.csv"], ["suffix '.txt'", "--input-format"]),
        (["{model}", "in.csv", "-o", "out.json"], ["suffix '.json'", "--output-format"]),
        (
            ["{model}", "no_petals.csv", "-o", "out.csv"],
            ["INPUT", "missing feature column(s) 'petal_length'"],
        ),
        (["{model}", "in.csv", "-o", "out.csv", "--id-column", "key"], ["no column 'key'"]),
        (["{model}", "in.csv", "-o", "in.csv"], ["must be three different files"]),
        (["{model}", "in.csv", "-o", "out.csv", "--id-column", "prediction"], ["its own column"]),
        (["{model}", "in.csv", "-o", "out.csv", "--workers", "2"], ["need --engine dask"]),
        (["{model}", "in.csv", "-o", "out.csv", "--engine", "fast"], ["'fast' is not one of"]),
        (["{model}", "empty.csv", "-o", "out.csv"], ["empty.csv: empty file"]),
        (["{model}", "in.csv", "-o", "nodir/out.csv"], ["cannot write nodir/out.csv"]),
        (["nomodel", "in.csv", "-o", "out.csv"], ["MODEL_DIR", "no flaskserve.json"]),
        (["{model}", "in.csv"], ["Missing option '-o'"]),
    ],
    ids=[
        "missing-input",
        "unknown-input-format",
        "unknown-output-format",
        "missing-feature-column",
        "missing-id-column",
        "output-is-input",
        "id-column-clash",
        "workers-without-dask",
        "unknown-engine",
        "empty-file",
        "output-directory-missing",
        "not-a-model",
        "no-output",
    ],
)
def test_refusals(
    invoke: Invoke,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    fragments: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "in.csv")
    write_csv(tmp_path / "in.txt")
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "no_petals.csv").write_text("sepal_length,sepal_width\n1,2\n")

    result = invoke(*[a.format(model=model_dir) for a in args])

    assert_refused(result, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "empty.csv",
        "in.csv",
        "in.txt",
        "no_petals.csv",
    ]
