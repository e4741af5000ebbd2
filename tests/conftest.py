"""Shared fixtures: ``relay`` (our own scriptable server) and ``llmock`` (the PyPI llmock
server, run as a subprocess). See tests/relay.py and tests/LLMOCK.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests._util import CHAT_ENV_VARS
from tests.relay import Relay

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

# Seconds llmock gets to import FastAPI and start uvicorn (about 1 s on a warm machine).
_LLMOCK_STARTUP_SECONDS = 30.0
_STREAM_FAULTS = frozenset({"disconnect", "truncate", "malformed", "stall"})
# Talk to 127.0.0.1 directly even if the environment defines an HTTP proxy.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(autouse=True)
def _private_log(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test (and every kernel or process it starts) logs to a folder of its own, never to the
    developer's ~/.local/share/shenma-magic."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


@pytest.fixture
def relay() -> Iterator[Relay]:
    """A started :class:`tests.relay.Relay` on 127.0.0.1, stopped after the test."""
    with Relay() as server:
        yield server


class LLMockProcess:
    """A running ``llmock serve`` subprocess and helpers for its ``/_llmock`` control API.

    Behaviours queued with the helpers apply to the next matching requests only
    (``times=1``) unless ``times`` says otherwise (``times=None``: until :meth:`reset`).
    """

    FORCE_STATUS_HEADER = "x-llmock-force-status"

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path  # llmock's stdout+stderr, for debugging a failed test
        self.base = f"http://127.0.0.1:{port}"
        self.url = self.base + "/v1"  # the OpenAI base URL; chat is url + "/chat/completions"

    # -- faults ---------------------------------------------------------------------

    def headers_for_status(self, status: int) -> dict[str, str]:
        """Request headers that make llmock answer ``status`` (400..599) with an OpenAI
        error body instead of a completion; queued behaviours are left untouched."""
        return {self.FORCE_STATUS_HEADER: str(status)}

    def add(self, *behaviors: dict[str, Any]) -> dict[str, Any]:
        """Queue raw behaviours, e.g. ``{"type": "fail", "status": 429}``."""
        return self._call("POST", "/_llmock/scenario", {"behaviors": list(behaviors)})

    def scenario(self, kind: str, **params: Any) -> dict[str, Any]:
        """Queue one behaviour: ``scenario("truncate", after_chunks=3)`` for stream faults
        (truncate, disconnect, malformed, stall), else ``scenario("fail", status=503)``,
        ``scenario("reply", text="hi")``, ``scenario("delay", seconds=1)``..."""
        if kind in _STREAM_FAULTS:
            return self.add({"type": "stream_fault", "kind": kind, **params})
        return self.add({"type": kind, **params})

    def fail(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        code: str | None = None,
        times: int | None = 1,
    ) -> dict[str, Any]:
        """The next ``times`` requests get ``status``; 429/503/504/529 carry Retry-After."""
        params: dict[str, Any] = {"status": status, "times": times}
        if retry_after is not None:
            params["retry_after"] = retry_after
        if message is not None:
            params["message"] = message
        if code is not None:
            params["code"] = code
        return self.scenario("fail", **params)

    def truncate(self, after_chunks: int = 1, *, times: int | None = 1) -> dict[str, Any]:
        """End the next stream cleanly after ``after_chunks`` events: no finish_reason, no [DONE]."""
        return self.scenario("truncate", after_chunks=after_chunks, times=times)

    def disconnect(self, after_chunks: int = 1, *, times: int | None = 1) -> dict[str, Any]:
        """Close the connection after ``after_chunks`` events, without the final 0-chunk."""
        return self.scenario("disconnect", after_chunks=after_chunks, times=times)

    def malformed(self, after_chunks: int = 1, *, times: int | None = 1) -> dict[str, Any]:
        """Cut event number ``after_chunks`` (from 0) in half; the stream then goes on."""
        return self.scenario("malformed", after_chunks=after_chunks, times=times)

    def stall(self, after_chunks: int = 1, seconds: float = 30.0, *, times: int | None = 1) -> dict[str, Any]:
        """Pause ``seconds`` after ``after_chunks`` events, then finish the stream normally."""
        return self.scenario("stall", after_chunks=after_chunks, stall_seconds=seconds, times=times)

    def reply(self, text: str, *, times: int | None = 1) -> dict[str, Any]:
        """Script the text of the next answer (streamed one word per event)."""
        return self.scenario("reply", text=text, times=times)

    # -- inspection -------------------------------------------------------------------

    def pending(self) -> list[dict[str, Any]]:
        """Behaviours still waiting for a request."""
        return list(self._call("GET", "/_llmock/scenario")["pending"])

    def journal(self) -> list[dict[str, Any]]:
        """Every request served since the last reset (no headers: llmock keeps only the body)."""
        return list(self._call("GET", "/_llmock/requests")["requests"])

    def reset(self) -> None:
        """Forget queued behaviours and recorded requests."""
        self._call("POST", "/_llmock/reset")

    def _call(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with _NO_PROXY.open(request, timeout=10) as response:
                result: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as exc:  # a bad behaviour: show llmock's reason
            raise AssertionError(f"llmock {method} {path} -> {exc.code}: {exc.read().decode()}") from exc
        return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _llmock_command(port: int) -> list[str]:
    # `python -m llmock` does not exist (no __main__); `-m llmock.cli` runs the same Typer
    # app as the `llmock` script and is guaranteed to use this interpreter.
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if importlib.util.find_spec("llmock.cli") is not None:
        return [sys.executable, "-m", "llmock.cli", *serve]
    return [str(Path(sys.executable).with_name("llmock")), *serve]


def _start_llmock(log_path: Path) -> LLMockProcess:
    # Settings come from flags, env and config: drop any LLMOCK_* of the developer's shell
    # (error rates, stream faults, latency) so every run starts from llmock's defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOCK_")}
    port = _free_port()
    with open(log_path, "ab") as log:  # a file, not a pipe: a full pipe would block llmock
        process = subprocess.Popen(
            _llmock_command(port), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    server = LLMockProcess(process, port, log_path)
    deadline = time.monotonic() + _LLMOCK_STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with _NO_PROXY.open(server.base + "/health", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.05)
    _stop_process(process)
    raise RuntimeError(f"llmock did not start on port {port}; its output:\n{log_path.read_text()[-2000:]}")


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def _llmock_process() -> Iterator[LLMockProcess]:
    """One llmock subprocess for the whole session (it takes about a second to start)."""
    if importlib.util.find_spec("llmock") is None:
        pytest.skip("llmock is not installed (pip install llmock)")
    log_dir = Path(tempfile.mkdtemp(prefix="llmock-"))
    server: LLMockProcess | None = None
    error: Exception | None = None
    for _attempt in range(3):  # the free port can be taken between probe and bind
        try:
            server = _start_llmock(log_dir / "llmock.log")
            break
        except RuntimeError as exc:
            error = exc
    if server is None:
        pytest.skip(f"llmock could not be started: {error}")
    try:
        yield server
    finally:
        _stop_process(server.process)


@pytest.fixture
def llmock(_llmock_process: LLMockProcess) -> Iterator[LLMockProcess]:
    """The session's llmock server, reset before and after the test.

    Overrides the in-process ``llmock`` fixture of llmock's own pytest plugin: this one is
    a real separate process on 127.0.0.1, and sets no OPENAI_* environment variables.
    """
    _llmock_process.reset()
    yield _llmock_process
    with contextlib.suppress(OSError, AssertionError):
        _llmock_process.reset()


@pytest.fixture
def chat_shell(
    relay: Relay, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[..., InteractiveShell]]:
    """A factory for a real IPython shell with ``%load_ext shenma_magic``, pointed at ``relay`` with a key.

    ``chat_shell(key, max_retries=None)`` returns the shell. The environment is cleaned of the user's own
    settings, keys are stored under ``tmp_path``, and afterwards the extension is unloaded, registered
    tools are dropped and the names the test created in the namespace are removed.
    """
    from IPython.core.interactiveshell import InteractiveShell

    import shenma_magic

    shell = InteractiveShell.instance()
    before = set(shell.user_ns)
    loaded: list[InteractiveShell] = []

    def make(key: str, *, max_retries: int | None = None) -> InteractiveShell:
        # %config ChatMagics.x lives in the shell's config and would outlive the test: start clean.
        shell.config.pop("ChatMagics", None)
        for var in CHAT_ENV_VARS:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        monkeypatch.setenv("SHENMA_BASE_URL", relay.url)
        monkeypatch.setenv("SHENMA_API_KEY", key)
        shell.run_line_magic("load_ext", "shenma_magic")
        if max_retries is not None:
            shell.run_line_magic("config", f"ChatMagics.max_retries = {max_retries}")
        loaded.append(shell)
        return shell

    yield make
    if loaded:
        shell.run_line_magic("unload_ext", "shenma_magic")
    shenma_magic.tools().clear()
    shell.config.pop("ChatMagics", None)
    for name in set(shell.user_ns) - before:
        if not name.startswith("_"):
            del shell.user_ns[name]


@pytest.fixture
def ip(chat_shell: Callable[..., InteractiveShell], request: pytest.FixtureRequest) -> InteractiveShell:
    """The shell of :func:`chat_shell` with the test module's ``KEY``, and its ``IP_MAX_RETRIES`` when it
    sets one (0: no backoff waits in tests that do not ask for retries)."""
    key = getattr(request.module, "KEY", "sk-TESTKEY0000000000000000000000")
    return chat_shell(key, max_retries=getattr(request.module, "IP_MAX_RETRIES", None))
