"""Large batches of a tree ensemble on native code compiled here, from the model's trees.

An artifact whose trees Treelite can read keeps them as a Treelite checkpoint
(``native.tl``: numbers, never code). TL2cgen turns the checkpoint into C and the
machine's C compiler into a shared library, which evaluates a tree in about 10 ns a
row where ONNX Runtime takes about 23 (docs/performance.md#large-batches-against-mlserver).
The library is built on the machine that serves, never shipped in an artifact: loading
a library runs its code, and an artifact may come from anyone. It is kept in a cache
directory (``FLASKSERVE_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/flaskserve/native``,
else ``~/.cache/flaskserve/native``), named by the checkpoint's SHA-256 and the
versions that built it, so each machine builds a model once.

Only batches use it (from ``parallel_rows`` rows), and only where the parity gate ran
it on the gate's rows and passed (``compiled.native`` in the manifest). Without
``flaskserve[native]`` or a C compiler, or with ``FLASKSERVE_NATIVE_BATCHES=0``, large
batches run on ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .base import Prediction
from .cores import usable_cores

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "native.tl"
#: the longest a library's build may take (a 300-tree forest takes a few seconds)
BUILD_SECONDS = 600
_COMPILERS = ("gcc", "clang")


def unavailable() -> str | None:
    """Why native batches cannot be built here, or ``None`` when they can."""
    if os.environ.get("FLASKSERVE_NATIVE_BATCHES", "").strip().lower() in ("0", "false", "no"):
        return "turned off (FLASKSERVE_NATIVE_BATCHES=0)"
    try:
        import tl2cgen  # noqa: F401
        import treelite  # noqa: F401
    except ImportError as e:
        return f"{e.name} is not installed (pip install 'flaskserve[native]')"
    if _compiler() is None:
        return "no C compiler (gcc or clang) on PATH"
    return None


def _compiler() -> str | None:
    return next((c for c in _COMPILERS if shutil.which(c)), None)


def cache_dir() -> Path:
    """Where built libraries are kept (see the module's text)."""
    configured = os.environ.get("FLASKSERVE_NATIVE_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flaskserve" / "native"


def checkpoint_of(estimator: Any) -> bytes:
    """The trees of *estimator* (a scikit-learn forest or an XGBoost ``Booster``) as a
    Treelite checkpoint.

    :raises Exception: Treelite cannot read this estimator (its own error).
    """
    import treelite

    with _quiet():
        if is_xgboost_booster(estimator):  # its own JSON
            model = treelite.frontend.from_xgboost_json(estimator.save_raw("json").decode())
        else:
            model = treelite.sklearn.import_model(estimator)
        checkpoint: bytes = model.serialize_bytes()
    return checkpoint


def build(checkpoint: bytes, directory: Path | None = None) -> Path:
    """The shared library of *checkpoint*, built unless the cache has it.

    Workers that start together build it once: a lock file serialises them, and the
    library is renamed into place whole.

    :raises Exception: the checkpoint does not load or the compiler failed.
    """
    import tl2cgen
    import treelite

    directory = directory or cache_dir()
    digest = hashlib.sha256(checkpoint).hexdigest()[:32]
    versions = f"tl{treelite.__version__}-tc{tl2cgen.__version__}-{platform.machine()}"
    target = directory / f"{digest}-{versions}.so"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f".{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():  # another worker built it while this one waited
            return target
        with tempfile.TemporaryDirectory(dir=directory) as work:
            built = Path(work) / "model.so"
            _build_in_child(checkpoint, built)
            os.replace(built, target)
    return target


def _build_in_child(checkpoint: bytes, library: Path) -> None:
    """Run :mod:`.native_child`; what it printed goes to the debug log, its error raised."""
    child = Path(__file__).with_name("native_child.py")
    command = [sys.executable, str(child), str(library), _compiler() or "gcc", str(usable_cores())]
    done = subprocess.run(
        command, input=checkpoint, capture_output=True, timeout=BUILD_SECONDS, check=False
    )
    printed = (done.stdout + done.stderr).decode(errors="replace").strip()
    if printed:
        logger.debug("native build: %s", printed)
    if done.returncode != 0:
        last = printed.splitlines()[-1] if printed else f"exit status {done.returncode}"
        raise RuntimeError(f"building the native library failed: {last}")


def is_xgboost_booster(estimator: Any) -> bool:
    """Whether *estimator* is XGBoost's ``Booster`` (read without importing xgboost)."""
    kind = type(estimator)
    return (kind.__module__.split(".")[0], kind.__name__) == ("xgboost", "Booster")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Treelite prints its notes to stdout while importing a model, which is a command's
    output or a server's log: they go to the debug log instead (TL2cgen's build runs in
    a child process, :func:`_build_in_child`, for the notes its C++ core writes)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        yield
    if printed.getvalue().strip():
        logger.debug("native build: %s", printed.getvalue().strip())


class NativeForest:
    """A built library's predictions, as the compiled runtime gives them.

    :param labels: a classifier's labels in its probabilities' order; ``None``: a regressor.
    :param threads: rows are split over this many threads.
    """

    def __init__(self, library: Path, labels: np.ndarray | None, threads: int) -> None:
        import tl2cgen

        self._predictor = tl2cgen.Predictor(str(library), nthread=threads, verbose=False)
        self._labels = labels
        self._lock = threading.Lock()  # one batch at a time: each already uses every core

    def run(self, rows: np.ndarray) -> Prediction:
        """Labels (or values) and, for a classifier, probabilities of float64 *rows*.

        The rows are rounded to float32 first, as scikit-learn's trees do.
        """
        import tl2cgen

        matrix = tl2cgen.DMatrix(np.ascontiguousarray(rows, dtype=np.float32), dtype="float32")
        with self._lock:
            out = np.asarray(self._predictor.predict(matrix), dtype=np.float64)
        out = out.reshape(len(rows), -1)
        if self._labels is None:
            return Prediction(out[:, 0])
        if out.shape[1] == 1 and len(self._labels) == 2:  # one score: the second class's
            out = np.column_stack([1.0 - out[:, 0], out[:, 0]])
        return Prediction(self._labels[np.argmax(out, axis=1)], out)


class NativeBatches:
    """The native library of one model, built in the background; ``None`` until ready.

    A model's first large batches run on ONNX Runtime while its library builds (a
    second or two, once per machine).
    """

    def __init__(self, checkpoint: bytes, labels: np.ndarray | None) -> None:
        self._forest: NativeForest | None = None
        thread = threading.Thread(
            target=self._build, args=(checkpoint, labels), name="flaskserve-native", daemon=True
        )
        thread.start()
        self._thread = thread

    @property
    def forest(self) -> NativeForest | None:
        return self._forest

    def wait(self, timeout: float) -> bool:
        """Wait for the build (tests, benchmarks); ``True`` when the library is ready."""
        self._thread.join(timeout)
        return self._forest is not None

    def _build(self, checkpoint: bytes, labels: np.ndarray | None) -> None:
        try:
            library = build(checkpoint)
            self._forest = NativeForest(library, labels, max(2, usable_cores()))
        except Exception as e:  # large batches stay on ONNX Runtime
            logger.warning("native batches unavailable, ONNX Runtime runs them: %s", e)
