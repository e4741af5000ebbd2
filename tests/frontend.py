"""A notebook frontend in miniature: applies a kernel's IOPub messages the way JupyterLab 4 does.

Rules (from JupyterLab's services ``KernelConnection._handleMessage`` / ``_handleDisplayId`` and
``OutputArea``, and jupyterlab-manager's Output widget):

* An output message (``stream``, ``display_data``, ``execute_result``, ``error``, ``clear_output``) goes to
  the cell whose execute request is its ``parent_header.msg_id``. The cell's future stays open after the
  cell returns (``requestExecute(content, false)``) until it runs again, so late output still lands
  there; a message whose parent is no cell of ours is dropped (kept in :attr:`Frontend.orphans`).
* A ``display_data``/``update_display_data`` with ``transient.display_id`` first replaces every output
  shown with that id, in whatever cell; an update then stops there, a display is also appended.
* While an ``Output`` widget's ``msg_id`` is a cell's request id, that cell's output messages go into the
  widget instead (its message hook on the cell's future), except updates.
* Widget comm messages (``comm_open``/``comm_msg``/``comm_close``) update the widget models by comm id,
  whatever their parent.
"""

from __future__ import annotations

from typing import Any

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")


class Frontend:
    def __init__(self) -> None:
        self.cells: dict[str, list[dict[str, Any]]] = {}
        self.widgets: dict[str, dict[str, Any]] = {}
        self.orphans: list[dict[str, Any]] = []
        self._shown: dict[str, list[tuple[str, int]]] = {}

    def add_cell(self, msg_id: str) -> None:
        """A cell was run: its execute request's msg_id (outputs start empty, as when a cell re-runs)."""
        self.cells[msg_id] = []

    def apply(self, msg: dict[str, Any]) -> None:
        kind = msg["header"]["msg_type"]
        content = msg.get("content") or {}
        parent = (msg.get("parent_header") or {}).get("msg_id")
        if kind == "comm_open":
            self.widgets[content["comm_id"]] = dict((content.get("data") or {}).get("state") or {})
            return
        if kind == "comm_msg":
            data = content.get("data") or {}
            if data.get("method") == "update" and content["comm_id"] in self.widgets:
                self.widgets[content["comm_id"]].update(data.get("state") or {})
            return
        if kind == "comm_close":
            self.widgets.pop(content["comm_id"], None)
            return
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id and kind in ("display_data", "update_display_data", "execute_result"):
            output = {"output_type": "display_data", "data": content.get("data", {})}
            for cell, index in self._shown.get(display_id, []):
                if cell in self.cells and index < len(self.cells[cell]):
                    self.cells[cell][index] = output
            if kind == "update_display_data":
                return
        if kind not in (*_OUTPUT_TYPES, "clear_output"):
            return
        if parent not in self.cells:
            self.orphans.append(msg)
            return
        capture = [w for w in self.widgets.values() if w.get("msg_id") == parent]
        if capture:
            if kind == "clear_output":
                capture[-1]["captured"] = []
            else:
                capture[-1].setdefault("captured", []).append({"output_type": kind, **content})
            return
        if kind == "clear_output":
            self.cells[parent] = []
            return
        self.cells[parent].append({"output_type": kind, **content})
        if display_id:
            self._shown.setdefault(display_id, []).append((parent, len(self.cells[parent]) - 1))

    # -- what a user sees ------------------------------------------------------------------------------

    def text(self, msg_id: str) -> str:
        """Everything the cell shows as text: outputs' text/plain, and the widgets' HTML and text values."""
        return "\n".join(self._output_text(o) for o in self.cells.get(msg_id, []))

    def _output_text(self, output: dict[str, Any]) -> str:
        if output["output_type"] == "stream":
            return str(output.get("text", ""))
        data = output.get("data") or {}
        view = data.get(WIDGET_MIME)
        if isinstance(view, dict):
            return self._widget_text(str(view.get("model_id")), set())
        if output["output_type"] == "error":
            return f"{output.get('ename')}: {output.get('evalue')}"
        return str(data.get("text/plain", ""))

    def _widget_text(self, model_id: str, seen: set[str]) -> str:
        state = self.widgets.get(model_id)
        if state is None or model_id in seen:
            return ""
        seen.add(model_id)
        parts = [str(state.get("value", ""))] if isinstance(state.get("value"), str) else []
        for child in state.get("children") or []:
            if isinstance(child, str) and child.startswith("IPY_MODEL_"):
                parts.append(self._widget_text(child[len("IPY_MODEL_") :], seen))
        for output in state.get("captured") or []:
            parts.append(self._output_text(output))
        return "\n".join(p for p in parts if p)
