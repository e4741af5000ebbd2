"""Real IPython kernels for tests, driven through jupyter_client, with a :class:`~tests.frontend.Frontend`
applying their IOPub messages as they arrive.

``KERNELS`` names the kernels the tests run against: ipykernel 7.x (this interpreter) and 6.x (a side
virtualenv: ``$SHENMA_IPK6_PYTHON``, else ``.venv-ipk6/bin/python`` at the repository root, which
``bash .ci/setup test`` makes); a missing one is skipped.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from tests.frontend import Frontend

ROOT = Path(__file__).resolve().parent.parent


def ipk6_python() -> Optional[str]:
    candidate = os.environ.get("SHENMA_IPK6_PYTHON") or str(ROOT / ".venv-ipk6" / "bin" / "python")
    return candidate if Path(candidate).exists() else None


def kernel_python(version: str) -> str:
    """The interpreter whose ipykernel has this major version, or skip the test."""
    if version == "7":
        return sys.executable
    python = ipk6_python()
    if python is None:
        pytest.skip("no ipykernel 6 side venv (.venv-ipk6, made by bash .ci/setup test)")
    return python


def ipykernel_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import ipykernel; print(ipykernel.__version__)"], capture_output=True, text=True
    )
    return out.stdout.strip()


class Kernel:
    """A started kernel; ``run(code)`` sends a cell, ``reply(msg_id)`` waits for its execute_reply."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        self._dir = tempfile.mkdtemp(prefix="shenma-kernel-")
        spec = Path(self._dir, "kernels", "k")
        spec.mkdir(parents=True)
        argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "language": "python", "display_name": "k"})
        )
        self.km = KernelManager(
            kernel_name="k", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)])
        )
        kernel_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        kernel_env.pop("PYTEST_CURRENT_TEST", None)
        self.km.start_kernel(env=kernel_env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.frontend = Frontend()
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._replies: dict[str, dict[str, Any]] = {}
        self._sent: dict[str, float] = {}
        self._idle: set[str] = set()
        self._stop = threading.Event()
        self._pump = threading.Thread(target=self._read_iopub, daemon=True)
        self._pump.start()

    def _read_iopub(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            except Exception:  # channels closed at shutdown
                return
            with self.lock:
                self.messages.append(msg)
                self.frontend.apply(msg)
                if msg["header"]["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    self._idle.add(msg["parent_header"].get("msg_id", ""))

    def run(self, code: str, *, allow_stdin: bool = True) -> str:
        """Send a cell (as a frontend does: allow_stdin true) and return its msg_id at once."""
        with self.lock:
            msg_id: str = self.kc.execute(code, allow_stdin=allow_stdin)
            self.frontend.add_cell(msg_id)
            self._sent[msg_id] = time.monotonic()
        return msg_id

    def reply(self, msg_id: str, timeout: float = 30.0) -> tuple[dict[str, Any], float]:
        """The execute_reply of ``msg_id`` and the seconds from sending the cell to it."""
        deadline = time.monotonic() + timeout
        while msg_id not in self._replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no execute_reply for {msg_id} in {timeout} s")
            try:
                msg = self.kc.get_shell_msg(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            pid = msg["parent_header"].get("msg_id")
            self._replies[pid] = {**msg, "received": time.monotonic()}
        reply = self._replies[msg_id]
        return reply, reply["received"] - self._sent[msg_id]

    def execute(self, code: str, timeout: float = 30.0) -> str:
        """Run a cell and wait for it (and its idle status); returns its msg_id. Fails on an error reply."""
        msg_id = self.run(code)
        reply, _ = self.reply(msg_id, timeout)
        self.settle(msg_id)
        assert reply["content"]["status"] == "ok", (code, self.text(msg_id))
        return msg_id

    def settle(self, msg_id: str, timeout: float = 10.0) -> None:
        """Wait until the kernel's idle status for this cell has been applied."""
        deadline = time.monotonic() + timeout
        while msg_id not in self._idle and time.monotonic() < deadline:
            time.sleep(0.01)

    def text(self, msg_id: str) -> str:
        with self.lock:
            return self.frontend.text(msg_id)

    def outputs(self, msg_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(o) for o in self.frontend.cells.get(msg_id, [])]

    def shutdown(self, now: bool = False) -> None:
        self._stop.set()
        self._pump.join(timeout=2)
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=now)
