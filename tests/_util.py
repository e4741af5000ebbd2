"""Helpers shared by the tests: stream builders, the magic's state, a notebook run by nbclient, and the
fresh-interpreter check of what a module imports. Fixtures live in conftest.py."""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tests import relay as _relay
from tests.relay import Chunk, chat_chunk, sse

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

    from IPython.core.history import HistoryManager
    from IPython.core.interactiveshell import InteractiveShell

ROOT = Path(__file__).resolve().parent.parent

# The user's own settings that would point a test elsewhere: every test that builds a shell clears them.
CHAT_ENV_VARS = ("SHENMA_API_KEY", "SHENMA_BASE_URL", "SHENMA_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL")


# -- streams ----------------------------------------------------------------------------------------------


def chunk(text: str, **kw: Any) -> bytes:
    """One SSE event with a content delta (``chat_chunk`` options: ``role=``, ``model=``...)."""
    return sse(chat_chunk(text, **kw))


def ending() -> list[bytes]:
    """The end of a normal stream: ``finish_reason: "stop"``, then ``[DONE]``."""
    return [sse(chat_chunk(finish_reason="stop")), sse("[DONE]")]


def stream_around(first: str, event: bytes, last: str) -> list[Chunk]:
    """A whole stream of ``first`` and ``last`` with ``event`` (raw bytes: an odd event) between them."""
    return [chunk(first, role="assistant"), event, chunk(last), *ending()]


def tool_call_stream(name: str, arguments: str, call_id: str = "call_1") -> list[Any]:
    """A streamed reply that only asks for one tool call (arguments in two deltas), then ``tool_calls``
    and ``[DONE]``; see :func:`tests.relay.tool_call_stream`."""
    return _relay.tool_call_stream(name, arguments, call_id)


# -- comparisons ------------------------------------------------------------------------------------------


def approx(expected: float) -> float:
    """``pytest.approx(expected)`` typed as the float it stands for, so that it can sit inside a record or
    a tuple compared with ``==`` (``LedgerRow(..., approx(0.03))``); it still equals any float close to
    ``expected``. A bare ``pytest.approx`` there is no float to mypy."""
    import pytest  # here, not at the top: kernels in the notebook tests import this module too

    return cast(float, pytest.approx(expected))


# -- the magic's state ------------------------------------------------------------------------------------


def magics(ip: InteractiveShell) -> Any:
    """The ``ChatMagics`` instance registered on ``ip``."""
    return ip.magics_manager.registry["ChatMagics"]


def history(ip: InteractiveShell) -> HistoryManager:
    """``ip.history_manager``, which IPython types as Any or None (the shell drops it at exit)."""
    from IPython.core.history import HistoryManager

    hm = ip.history_manager
    assert isinstance(hm, HistoryManager)
    return hm


def clients_of(ip: InteractiveShell) -> list[Any]:
    """The ``ChatClient`` objects the extension keeps (one per base URL and key): the one place that
    knows where they live."""
    return list(magics(ip).session._clients.values())


# -- notebooks --------------------------------------------------------------------------------------------


def kernel_config(socket_dir: str) -> dict[str, Any]:
    """Kernels over IPC rather than TCP: a kernel talks to the process that started it only, and does not
    warn that TCP is unencrypted. The sockets' path is absolute (the default is relative, and the kernel
    runs in the notebook's folder) and short (a Unix socket path has about 100 bytes)."""
    return {"KernelManager": {"transport": "ipc", "ip": os.path.join(socket_dir, "k")}}


def run_notebook(nb: Any, *, env: Mapping[str, str], cwd: Path, **options: Any) -> Any:
    """Execute ``nb`` with nbclient in a fresh ``python3`` kernel (over IPC) started with ``env`` on top of
    this environment minus the chat settings of :data:`CHAT_ENV_VARS`; ``options`` go to
    ``NotebookClient`` (``allow_errors``, ``on_cell_execute``...). Returns ``nb``, executed in place."""
    from nbclient import NotebookClient
    from traitlets.config import Config

    old = dict(os.environ)
    for var in CHAT_ENV_VARS:
        os.environ.pop(var, None)
    os.environ.update(env)
    sockets = tempfile.TemporaryDirectory(prefix="ipc-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        client = NotebookClient(
            nb,
            kernel_name="python3",
            config=Config(kernel_config(sockets.name)),
            timeout=120,
            iopub_timeout=30,
            resources={"metadata": {"path": str(cwd)}},
            **options,
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
        sockets.cleanup()
    return nb


# -- HTTPS ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def https_server(folder: Path, ip: str, handler: type[BaseHTTPRequestHandler]) -> Iterator[tuple[int, Path]]:
    """A threaded HTTPS server on ``ip`` answering with ``handler``, with a self-signed certificate for that
    address (made by openssl in ``folder``; without openssl the test is skipped). Yields the server's port
    and the certificate's path; shuts the server down after."""
    import ssl
    import threading
    from http.server import ThreadingHTTPServer

    import pytest  # here, not at the top: kernels in the notebook tests import this module too

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={ip}",
            "-addext", f"subjectAltName=IP:{ip}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = ThreadingHTTPServer((ip, 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], cert
    finally:
        server.shutdown()
        server.server_close()


# -- imports ----------------------------------------------------------------------------------------------

_BLOCKER = """
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, _Blocked())
"""


def imported_by(code: str, watch: Iterable[str], *, block: Iterable[str] = ()) -> list[str]:
    """Run ``code`` in a fresh interpreter (this package first on the path) and return which of the
    top-level modules ``watch`` are imported afterwards, sorted. The modules in ``block`` cannot be
    imported there at all, whether they are installed or not."""
    names = sorted(set(watch))
    blocked = sorted(set(block))
    program = (
        (_BLOCKER.format(blocked=set(blocked)) if blocked else "")
        + code
        + f"\nimport sys\nprint(sorted(n for n in {names!r} if n in sys.modules))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return found
