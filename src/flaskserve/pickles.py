"""Read a pickle, only ever on the operator's explicit word.

Unpickling runs whatever code the file names (``__reduce__`` can call
``os.system``), so flaskserve uses this only in ``flaskserve import
--trust-pickle``, to convert a file the operator made into a skops artifact.
``flaskserve serve`` never calls it.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

from .errors import ArtifactError


def load_trusted_pickle(path: str | os.PathLike[str], *, trust_pickle: bool) -> Any:
    """Unpickle *path*, which the caller vouches for.

    :param trust_pickle: must be true: the operator's statement that the file is theirs.
    :raises PermissionError: *trust_pickle* is false.
    :raises ArtifactError: the file cannot be read or is not a pickle.
    """
    if not trust_pickle:
        raise PermissionError("refusing to unpickle without trust_pickle=True")
    try:
        with open(path, "rb") as f:
            return pickle.load(f)  # the operator vouched for this file: trust_pickle
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read ({e.strerror})") from e
    except Exception as e:  # a corrupt pickle raises almost anything
        raise ArtifactError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e
