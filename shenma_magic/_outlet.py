"""Output for one cell from any thread, and what kind of frontend the kernel is talking to.

Why a cell's output needs its own outlet (measured with real kernels through jupyter_client; see
tests/test_background.py): output made on a worker thread goes to whichever cell the kernel thinks is
current, and that differs by ipykernel version and by mechanism.

* ipykernel 6.x: ``print`` from a thread goes to the cell that started the thread, but ``display()``,
  ``DisplayHandle.update()``, widget comm messages and ``ipywidgets.Output`` capture use the parent of the
  cell running *now*.
* ipykernel 7.x: everything from a plain thread uses the cell running now (7 keeps parents in context
  variables, which a new thread does not inherit); a thread that runs in a copy of the cell's context
  gets that cell for everything.
* ``ipywidgets.Output.__enter__`` on a thread reads the current parent *and sets it globally*
  (``shell.set_parent``), so other threads' output moves too.
* A message sent with an explicit parent header goes where that header says, in both versions.

So a background reply captures the cell's parent request while its cell runs and sends every
``display_data`` / ``update_display_data`` itself with that parent (:class:`KernelOutlet`); widget state
goes over comms, which frontends route by comm id whatever the parent. JupyterLab and Notebook 7 keep a
cell's execute future open after it returns (``requestExecute(content, false)``) until the cell runs
again, and route ``update_display_data`` by display id; VS Code keeps each cell's message handler
listening after the cell ends for messages whose parent is that cell's request. Headless runners
(nbclient, hence nbconvert and papermill) read a cell's messages only until it returns: they send
``allow_stdin: false`` with every request, which :func:`is_headless` uses to run ``--bg`` in the
foreground there.
"""

from __future__ import annotations

import uuid
from typing import Any, Optional

__all__ = ["KernelOutlet", "is_headless", "kernel_of", "parent_of"]


def kernel_of(shell: Any) -> Any:
    """The ipykernel kernel behind ``shell``, or None (terminal IPython, plain Python)."""
    return getattr(shell, "kernel", None) if shell is not None else None


def parent_of(kernel: Any) -> dict[str, Any]:
    """The request the kernel is answering on this thread (the running cell's execute_request), or {}."""
    get_parent = getattr(kernel, "get_parent", None)
    # ipykernel < 6 had no get_parent
    parent = get_parent("shell") if get_parent is not None else getattr(kernel, "_parent_header", None)
    return parent if isinstance(parent, dict) else {}


def is_headless(parent: dict[str, Any]) -> bool:
    """True for a request from a runner that stops reading a cell's output when the cell returns.

    nbclient (and so ``jupyter nbconvert --execute`` and papermill, built on it) sets ``allow_stdin`` false
    on every execute_request; JupyterLab, Notebook 7, VS Code and ``jupyter console`` send true (they can
    answer ``input()``). A request without the field (not an execute_request) is not taken as headless.
    """
    content = parent.get("content")
    return isinstance(content, dict) and content.get("allow_stdin") is False


class KernelOutlet:
    """Sends display messages for one cell from any thread, each carrying that cell's parent header.

    Make it on the cell's own thread while the cell runs (:meth:`for_current_cell`); afterwards it may be
    used from anywhere.
    """

    def __init__(self, kernel: Any, parent: dict[str, Any]) -> None:
        self._kernel = kernel
        self.parent = parent

    @classmethod
    def for_current_cell(cls, shell: Any) -> Optional[KernelOutlet]:
        """The outlet of the cell running now, or None outside a kernel request."""
        kernel = kernel_of(shell)
        if kernel is None or getattr(kernel, "session", None) is None:
            return None
        parent = parent_of(kernel)
        if not parent.get("header"):
            return None
        return cls(kernel, parent)

    @property
    def msg_id(self) -> str:
        return str(self.parent.get("header", {}).get("msg_id", ""))

    @property
    def headless(self) -> bool:
        return is_headless(self.parent)

    def _send(self, msg_type: str, content: dict[str, Any]) -> None:
        # Session.send and the IOPub socket are what ipykernel's own display publisher uses from any
        # thread; only the parent differs: ours, not the kernel's idea of the current cell.
        self._kernel.session.send(
            self._kernel.iopub_socket, msg_type, content, parent=self.parent, ident=b"display_data"
        )

    def display(self, bundle: dict[str, Any], metadata: Optional[dict[str, Any]] = None) -> str:
        """A new output in the cell; returns its display id, for :meth:`update`."""
        display_id = uuid.uuid4().hex
        self._send(
            "display_data",
            {"data": bundle, "metadata": metadata or {}, "transient": {"display_id": display_id}},
        )
        return display_id

    def clear(self, wait: bool = False) -> None:
        """Clear the cell's outputs (with ``wait``, when its next output arrives: in the same step)."""
        self._send("clear_output", {"wait": wait})

    def update(
        self, display_id: str, bundle: dict[str, Any], metadata: Optional[dict[str, Any]] = None
    ) -> None:
        """Replace the output shown with ``display_id`` (wherever it is) by ``bundle``."""
        self._send(
            "update_display_data",
            {"data": bundle, "metadata": metadata or {}, "transient": {"display_id": display_id}},
        )
