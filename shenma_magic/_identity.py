"""Which notebook a kernel serves, so the log can give each notebook its own memory. Pure: the environment,
the user namespace and the working directory come in as arguments.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Any

__all__ = ["notebook_identity"]


def _normal(path: str) -> str:
    return os.path.normcase(os.path.normpath(path))


def _absolute(path: str, cwd: str) -> str:
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return _normal(path)
    # jupyter-server gives the notebook's path relative to its root when it starts the kernel without a
    # name, and starts the kernel in the notebook's folder: when the working directory ends with that
    # relative folder, the notebook lives in it.
    folder, name = posixpath.split(path.replace(os.sep, "/"))
    parts = [p for p in folder.split("/") if p and p != "."]
    cwd_parts = _normal(cwd).split(os.sep)
    if parts and cwd_parts[-len(parts) :] == parts:
        return _normal(os.path.join(cwd, name))
    return _normal(os.path.join(cwd, path))


def notebook_identity(environ: Mapping[str, str], user_ns: Mapping[str, Any], cwd: str) -> str:
    """The notebook's absolute, normalised path: ``JPY_SESSION_NAME`` (set by jupyter-server for the
    kernel it starts), else VS Code's ``__vsc_ipynb_file__`` in the user namespace, else ``cwd`` (terminal
    IPython and plain Python, where the folder is the closest thing to a notebook)."""
    cwd = os.path.abspath(os.path.expanduser(cwd))
    session = (environ.get("JPY_SESSION_NAME") or "").strip()
    if session:
        return _absolute(session, cwd)
    vscode = user_ns.get("__vsc_ipynb_file__")
    if isinstance(vscode, str) and vscode.strip():
        return _absolute(vscode.strip(), cwd)
    return _normal(cwd)
