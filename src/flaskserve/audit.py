"""A light audit of a skops file: its structure and the types it names, nothing imported.

The compiled runtime answers from ``model.onnx`` and never loads the scikit-learn
model, so importing scikit-learn and skops just to audit ``model.skops`` would cost
each worker over 100 MB. This reads the file's ``schema.json`` (the JSON tree
that skops rebuilds objects from) and refuses what skops' own audit would not
load by default: anything but a zip with a schema, and any type or function
outside scikit-learn's classes, NumPy's types and ufuncs, plain builtins, and
:data:`flaskserve.artifact.TRUSTED_TYPES`. ``load_model`` still runs skops' audit.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import TRUSTED_TYPES
from .errors import ArtifactError

SAFE_BUILTINS = frozenset(
    {"str", "int", "float", "bool", "complex", "bytes", "list", "dict", "tuple", "set"}
    | {"frozenset", "slice", "NoneType", "type", "object"}
)


def named_types(payload: bytes) -> set[str]:
    """Every ``module.name`` the skops file's schema names, with the node kind for functions.

    :raises ValueError: not a zip file with a JSON ``schema.json``.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not a skops file ({e})") from e
    found = set()
    for node in _nodes(schema):
        kind = "function " if node.get("__loader__") == "FunctionNode" else ""
        found.add(f"{kind}{node['__module__']}.{node['__class__']}")
    return found


def refused_types(payload: bytes, trusted: tuple[str, ...]) -> list[str]:
    """The names in *payload* that are not trusted, sorted; ``[]`` when it may be served.

    :raises ValueError: not a skops file.
    """
    return sorted(name for name in named_types(payload) if not _trusted(name, trusted))


def _trusted(name: str, trusted: tuple[str, ...]) -> bool:
    is_function = name.startswith("function ")
    module, _, kind = name.removeprefix("function ").rpartition(".")
    if name in trusted:
        return True
    if module == "numpy" or module.startswith("numpy."):
        # a type or a ufunc: not a function that could write files (numpy.save is neither)
        found = getattr(sys.modules.get(module), kind, None)
        return isinstance(found, type | np.ufunc)
    if is_function:
        return False
    if module == "builtins":
        return kind in SAFE_BUILTINS
    return module.startswith("sklearn.")


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("__module__"), str) and isinstance(item.get("__class__"), str):
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def audit_model_file(payload: bytes, model_path: Path) -> None:
    """Check, without importing scikit-learn, that *payload* is a skops file of trusted types.

    For the compiled runtime, which never loads the scikit-learn model: an artifact
    whose model file is a pickle or names an untrusted type is refused all the same
    (see :mod:`flaskserve.audit`).

    :raises ArtifactError: not a skops file, or it names a type flaskserve does not trust.
    """
    try:
        untrusted = refused_types(payload, TRUSTED_TYPES)
    except ValueError as e:
        raise ArtifactError(f"{model_path}: not a readable skops file ({e})") from e
    if untrusted:
        raise ArtifactError(
            f"{model_path}: contains types flaskserve does not trust: {', '.join(untrusted)}"
        )
