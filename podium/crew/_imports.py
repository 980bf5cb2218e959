"""Importing what a crew file names as ``module:attribute`` (tools and output types).

Modules are imported with the crew file's folder first on ``sys.path``, then the working directory: so
``tools:publish`` finds ``tools.py`` beside the crew file, and ``examples.team.tools:publish`` is found from the
project's root. The crew's folder stays on ``sys.path`` afterwards, so the journal can find the output types
again when it reads a run back. A module of the crew's folder wins over one of the same name imported before
(two crews with their own ``tools.py`` can be loaded by one process, e.g. a test suite).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["ImportFailed", "import_object"]


class ImportFailed(Exception):
    """``module:attribute`` could not be imported; the message says why in one line."""


def import_object(path: str, folder: Path) -> Any:
    """The object at ``module:attribute``, imported with ``folder`` (the crew's) on ``sys.path``.

    Raises:
        ImportFailed: the module or the attribute cannot be imported.
    """
    module_name, _, attribute = path.partition(":")
    _add_path(str(folder.resolve()))
    _add_path(os.getcwd(), at_end=True)
    _forget_shadowed(module_name.split(".")[0], folder.resolve())
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ImportFailed(f"cannot import {path}: {_one_line(exc)}") from exc
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ImportFailed(f"cannot import {path}: {module_name!r} has no attribute {part!r}") from None
    return found


def _add_path(entry: str, *, at_end: bool = False) -> None:
    """Put ``entry`` on ``sys.path``: first (moved there if it is already on it), or last if it is not on it."""
    if at_end:
        if entry not in sys.path:
            sys.path.append(entry)
    elif sys.path[:1] != [entry]:
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    importlib.invalidate_caches()


def _forget_shadowed(top: str, folder: Path) -> None:
    """Drop an imported module named ``top`` (and its submodules) that is not the crew folder's own ``top``."""
    own = folder / f"{top}.py"
    package = folder / top / "__init__.py"
    if not (own.exists() or package.exists()):
        return
    loaded = sys.modules.get(top)
    file = getattr(loaded, "__file__", None)
    if loaded is None or (file is not None and Path(file).resolve() in (own.resolve(), package.resolve())):
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())
