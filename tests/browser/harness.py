"""A reusable real-browser harness: JupyterLab on 127.0.0.1 driven by Debian's Chromium through Playwright.

`LabServer` starts ``jupyter-lab`` from the same virtualenv as ``sys.executable`` in fully private
config/data/runtime/settings/workspace folders (the venv's ``share/jupyter`` stays on the data path, so the
venv's ``python3`` kernelspec and the ``jupyterlab_widgets`` extension are found) and cleans up after itself.

`LabPage` opens a notebook of that server in a fresh headless Chromium profile and offers the few things a
test needs: run a cell like a person would (with a key press), wait for outputs, read them, save, screenshot.

The server is started with ``LabApp.expose_app_in_browser`` so the page can ask the JupyterLab application
itself (``window.jupyterapp``) whether the notebook is loaded, the kernel idle and the document saved,
rather than guessing from the DOM.

All `LabPage` objects share one Playwright driver (its sync API allows one per thread); use them from
one thread. Import this module as ``tests.browser.harness`` (as the fixtures in tests/browser/conftest.py
do), so that there is only one copy of it, and so of that shared driver, in a process.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote

import requests

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from playwright.sync_api import BrowserContext, Dialog, Locator, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")

# Flags from the machine's browser recipe: without the background-networking ones Chromium keeps
# trying to reach the (closed) network.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# User settings written into the private JUPYTERLAB_SETTINGS_DIR of every server.
_LAB_USER_SETTINGS: dict[str, dict[str, Any]] = {
    # No news feed, no update check, no "would you like news?" toast.
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    # Keep every cell attached to the DOM so locators find cells and outputs that are scrolled away.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # Saving happens only when a test asks for it.
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}

# Server-side config: no network on the server side either, and window.jupyterapp for the harness.
_LAB_CONFIG: dict[str, Any] = {
    "LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "extension_manager": "readonly",
        "expose_app_in_browser": True,
    },
    "ServerApp": {"open_browser": False},
}

_PROMPT_NUMBER_JS = r"/^\[\d+\]:?$/"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, starttime) of a live process, from /proc; None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is the state (field 3); ppid is field 4, starttime field 22.
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def _descendants(root: int) -> list[tuple[int, int]]:
    """All live descendants of `root` as (pid, starttime), so they can be killed later by PID safely."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = _proc_stat(int(entry.name))
        if st is not None:
            children.setdefault(st[0], []).append((int(entry.name), st[1]))
    out: list[tuple[int, int]] = []
    todo = [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            out.append((pid, start))
            todo.append(pid)
    return out


def _alive(pid: int, starttime: int) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[1] == starttime


def _kill_if_same(pid: int, starttime: int, sig: int) -> bool:
    """Send `sig` to `pid` only if it is still the very process we recorded (guards against PID reuse)."""
    if not _alive(pid, starttime):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
        return True
    return False


_LIVE_SERVERS: set[LabServer] = set()


@atexit.register
def _stop_leftover_servers() -> None:  # pragma: no cover - only on abnormal exits
    for server in list(_LIVE_SERVERS):
        server.stop()


class LabServer:
    """A private ``jupyter-lab`` on 127.0.0.1 with a free port and a random token.

    Use as a context manager. ``env`` is added to the server's environment, which kernels inherit
    (e.g. ``{"SHENMA_BASE_URL": relay.url, "SHENMA_API_KEY": "sk-test"}``).
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        root_dir: Path | None = None,
        startup_timeout: float = 60.0,
        keep_files: bool = False,
    ) -> None:
        self.extra_env: dict[str, str] = dict(env or {})
        self.startup_timeout = startup_timeout
        self.keep_files = keep_files
        self.token: str = secrets.token_hex(16)
        self.port: int = 0
        self.home: Path = Path(tempfile.mkdtemp(prefix="labserver-"))
        self.root_dir: Path = root_dir if root_dir is not None else self.home / "root"
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.log_path: Path = self.home / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._http = requests.Session()
        self._http.headers["Authorization"] = f"token {self.token}"
        self._http.trust_env = False  # never go through a proxy from the environment for 127.0.0.1

    # ----------------------------------------------------------------- lifecycle
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jupyter_lab(self) -> Path:
        """The ``jupyter-lab`` script of the virtualenv that runs this Python."""
        exe = Path(sys.executable).parent / "jupyter-lab"
        if not exe.exists():
            raise RuntimeError(f"{exe} not found: install jupyterlab in the environment of {sys.executable}")
        return exe

    def _prepare_dirs(self) -> dict[str, str]:
        dirs = {
            "JUPYTER_CONFIG_DIR": self.home / "config",
            "JUPYTER_DATA_DIR": self.home / "data",
            "JUPYTER_RUNTIME_DIR": self.home / "runtime",
            "IPYTHONDIR": self.home / "ipython",
            "JUPYTERLAB_SETTINGS_DIR": self.home / "lab-settings",
            "JUPYTERLAB_WORKSPACES_DIR": self.home / "lab-workspaces",
        }
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        (dirs["JUPYTER_CONFIG_DIR"] / "jupyter_server_config.json").write_text(json.dumps(_LAB_CONFIG))
        for key, value in _LAB_USER_SETTINGS.items():
            path = dirs["JUPYTERLAB_SETTINGS_DIR"] / f"{key}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        return {k: str(v) for k, v in dirs.items()}

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # Settings that would leak the developer's own Jupyter setup into the test server.
        for key in ("JUPYTER_PATH", "JUPYTER_PREFER_ENV_PATH", "JUPYTER_TOKEN", "PYTHONSTARTUP"):
            env.pop(key, None)
        env.update(self._prepare_dirs())
        env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env.update(self.extra_env)
        return env

    def start(self) -> LabServer:
        if self.proc is not None:
            return self
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probing and binding: retry
            self.port = _free_port()
            cmd = [
                str(self.jupyter_lab),
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root_dir}",
            ]
            self._log_file = self.log_path.open("ab")
            self.proc = subprocess.Popen(
                cmd,
                env=self.environment(),
                cwd=str(self.root_dir),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            _LIVE_SERVERS.add(self)
            try:
                self._wait_ready()
                return self
            except RuntimeError as exc:
                last_error = str(exc)
                exited = self.proc.poll() is not None
                self.stop(remove_files=False)
                if not exited:  # a hang, not a lost port race: retrying would only hang again
                    break
        raise RuntimeError(f"jupyter-lab did not start: {last_error}")

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                r = self._http.get(f"{self.base_url}/api/status", params={"token": self.token}, timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"no 200 from /api/status in {self.startup_timeout}s\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, *, remove_files: bool | None = None) -> None:
        """Shut kernels down via REST, SIGTERM the server, then SIGKILL whatever of its tree is left."""
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(Exception):
                    self.shutdown_kernels(timeout=10)
            tree = _descendants(proc.pid)  # kernels etc., recorded before the server can orphan them
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            for pid, start in tree:
                _kill_if_same(pid, start, signal.SIGTERM)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and any(_alive(pid, start) for pid, start in tree):
                time.sleep(0.05)
            for pid, start in tree:
                _kill_if_same(pid, start, signal.SIGKILL)
            self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        _LIVE_SERVERS.discard(self)
        if remove_files if remove_files is not None else not self.keep_files:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> LabServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- REST
    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request to the server's REST API, authenticated with the token (``path`` starts with /api/)."""
        kwargs.setdefault("timeout", 10)
        return self._http.request(method, f"{self.base_url}{path}", **kwargs)

    def kernels(self) -> list[dict[str, Any]]:
        r = self.api("GET", "/api/kernels")
        r.raise_for_status()
        result: list[dict[str, Any]] = r.json()
        return result

    def shutdown_kernels(self, timeout: float = 10.0) -> None:
        """Delete every session (which shuts its kernel down), then any kernel left; wait until none runs."""
        r = self.api("GET", "/api/sessions")
        r.raise_for_status()
        for session in r.json():
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.kernels():
            self.api("DELETE", f"/api/kernels/{kernel['id']}")
        deadline = time.monotonic() + timeout
        while self.kernels():
            if time.monotonic() > deadline:
                raise TimeoutError(f"kernels still running after {timeout}s: {self.kernels()}")
            time.sleep(0.1)

    def start_session(self, name: str, kernel_name: str = "python3") -> dict[str, Any]:
        """Create (or return the existing) notebook session for ``name``: starts its kernel."""
        r = self.api(
            "POST",
            "/api/sessions",
            json={"path": name, "name": name, "type": "notebook", "kernel": {"name": kernel_name}},
            timeout=60,
        )
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    def contents(self, name: str, *, content: bool = False) -> dict[str, Any]:
        r = self.api("GET", f"/api/contents/{quote(name)}", params={"content": int(content)})
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    # ----------------------------------------------------------------- notebooks
    def write_notebook(self, name: str, cells: Sequence[str | tuple[Any, ...]]) -> Path:
        """Write an nbformat v4 notebook (python3 kernelspec) into the server's root dir. A cell is its
        source (a code cell), ``(cell_type, source)``, or ``("code", source, outputs)`` for a code cell
        that already holds outputs (as a saved notebook does)."""

        def cell(i: int, spec: str | tuple[Any, ...]) -> dict[str, Any]:
            kind, source, outputs = ("code", spec, []) if isinstance(spec, str) else (*spec, [])[:3]
            out: dict[str, Any] = {"id": f"cell-{i}", "cell_type": kind, "metadata": {}, "source": source}
            if kind == "code":
                out.update(execution_count=None, outputs=outputs)
            return out

        nb = {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {
                "kernelspec": {
                    "name": "python3",
                    "display_name": "Python 3 (ipykernel)",
                    "language": "python",
                },
                "language_info": {"name": "python"},
            },
            "cells": [cell(i, spec) for i, spec in enumerate(cells)],
        }
        path = self.root_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
        return path

    def read_notebook(self, name: str) -> dict[str, Any]:
        """The notebook as saved on disk (a dict in nbformat v4 JSON)."""
        result: dict[str, Any] = json.loads((self.root_dir / name).read_text(encoding="utf-8"))
        return result

    def url(self, name: str) -> str:
        return f"{self.base_url}/lab/tree/{quote(name)}?token={self.token}"


# --------------------------------------------------------------------------- browser

# JS run in the page: the NotebookPanel with a given Lumino id, through window.jupyterapp.
_PANEL_JS = """
(id) => {
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) { if (w.id === id) return w; }
  return null;
}
"""


# JS (inside a _with_panel body): the text of cell i's outputs, one output per line, without the
# "[n]:" prompts of execute_result outputs; nested output areas (an Output widget) count as their widget.
_OUTPUT_TEXT_JS = """
const outputText = (i) => {
  const c = panel.content.widgets[i];
  const area = c && c.node.querySelector('.jp-Cell-outputArea');
  if (!area) return '';
  const outs = area.querySelectorAll(':scope > .jp-OutputArea-child > .jp-OutputArea-output');
  return Array.from(outs).map(o => o.innerText).join('\\n');
};
"""


def _with_panel(body: str) -> str:
    """A JS function of ([id, ...args]) with `panel` bound to the NotebookPanel (or returning null)."""
    return (
        "([id, ...args]) => { const panel = (" + _PANEL_JS + ")(id); if (!panel) return null; " + body + " }"
    )


class _Driver:
    """One Playwright driver per process (its sync API allows only one per thread), shared by every
    open `LabPage` and stopped when the last one closes."""

    playwright: Playwright | None = None
    users = 0

    @classmethod
    def acquire(cls) -> Playwright:
        if cls.playwright is None:
            from playwright.sync_api import sync_playwright

            cls.playwright = sync_playwright().start()
        cls.users += 1
        return cls.playwright

    @classmethod
    def release(cls) -> None:
        cls.users -= 1
        if cls.users <= 0 and cls.playwright is not None:
            pw, cls.playwright, cls.users = cls.playwright, None, 0
            with contextlib.suppress(Exception):
                pw.stop()


class LabPage:
    """A headless Chromium (fresh persistent profile) showing notebooks of a `LabServer`."""

    open_pages: ClassVar[list[LabPage]] = []  # every LabPage not yet closed (for failure screenshots)

    def __init__(
        self,
        server: LabServer,
        *,
        headless: bool = True,
        viewport: tuple[int, int] = (1280, 900),
        default_timeout: float = 30.0,
    ) -> None:
        if not CHROMIUM.exists():
            raise RuntimeError(f"{CHROMIUM} not found (apt-get install chromium)")
        self.server = server
        self.default_timeout = default_timeout
        self.profile_dir = Path(tempfile.mkdtemp(prefix="labpage-profile-"))
        self.console: list[str] = []
        self.name: str | None = None
        self.panel_id: str | None = None
        pw = _Driver.acquire()
        self._closed = False
        try:
            self.context: BrowserContext = pw.chromium.launch_persistent_context(
                str(self.profile_dir),
                executable_path=str(CHROMIUM),
                headless=headless,
                args=list(CHROMIUM_ARGS),
                viewport={"width": viewport[0], "height": viewport[1]},
            )
        except BaseException:
            self._closed = True
            _Driver.release()
            shutil.rmtree(self.profile_dir, ignore_errors=True)
            raise
        self.context.set_default_timeout(default_timeout * 1000)
        self.page: Page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        # Leaving a page with unsaved notebooks asks "leave site?": leave (as reload() means to). Other
        # dialogs (alert/confirm/prompt from output scripts) are dismissed and recorded.
        self.page.on("dialog", self._on_dialog)
        LabPage.open_pages.append(self)

    def _on_dialog(self, dialog: Dialog) -> None:
        self.console.append(f"dialog {dialog.type}: {dialog.message}")
        if dialog.type == "beforeunload":
            dialog.accept()
        else:
            dialog.dismiss()

    def __enter__(self) -> LabPage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the browser and remove its profile (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ValueError):
            LabPage.open_pages.remove(self)
        with contextlib.suppress(Exception):
            self.context.close()
        _Driver.release()
        shutil.rmtree(self.profile_dir, ignore_errors=True)

    # ----------------------------------------------------------------- helpers
    def eval(self, js: str, arg: Any = None) -> Any:
        """``page.evaluate(js, arg)``."""
        return self.page.evaluate(js, arg)

    def _panel_eval(self, body: str, *args: Any) -> Any:
        return self.page.evaluate(_with_panel(body), [self.panel_id, *args])

    def _wait_panel(self, body: str, *args: Any, timeout: float, what: str) -> Any:
        """Poll a JS condition on the panel until truthy; on timeout raise with a readable message."""
        try:
            handle = self.page.wait_for_function(
                _with_panel(body), arg=[self.panel_id, *args], timeout=timeout * 1000, polling=50
            )
        except Exception as exc:
            raise TimeoutError(
                f"timed out after {timeout}s waiting for {what}; state: {self.debug_state()}"
            ) from exc
        return handle.json_value()

    def debug_state(self) -> dict[str, Any]:
        """What the page shows now (for error messages): panel, kernel status, dialogs, last console lines."""
        state: dict[str, Any] = {"url": self.page.url, "console": self.console[-8:]}
        with contextlib.suppress(Exception):
            state["panel"] = self._panel_eval(
                """return {path: panel.context.path, ready: panel.context.isReady, visible: panel.isVisible,
                  kernel: panel.sessionContext.kernelDisplayStatus,
                  session: panel.sessionContext.session ? panel.sessionContext.session.id : null};"""
            )
        with contextlib.suppress(Exception):
            state["dialogs"] = self.page.locator(".jp-Dialog").all_inner_texts()
            state["statusbar"] = self.status_bar_text().replace("\n", " | ")
        return state

    @property
    def notebook(self) -> Locator:
        """The notebook (``.jp-Notebook``) of the opened panel."""
        if self.panel_id is None:
            raise RuntimeError("no notebook open: call open(name) first")
        return self.page.locator(f'[id="{self.panel_id}"] .jp-Notebook')

    def cell(self, i: int) -> Locator:
        return self.notebook.locator(".jp-Cell").nth(i)

    def output_locator(self, i: int) -> Locator:
        """The output area of code cell ``i``."""
        return self.cell(i).locator(".jp-Cell-outputArea")

    def prompt(self, i: int) -> str:
        """Input prompt text of cell i, e.g. ``'[ ]:'``, ``'[*]:'``, ``'[3]:'``."""
        return str(self.cell(i).locator(".jp-InputArea-prompt").inner_text()).strip()

    def kernel_status(self) -> str:
        return str(self._panel_eval("return panel.sessionContext.kernelDisplayStatus;"))

    def status_bar_text(self) -> str:
        return str(self.page.locator("#jp-main-statusbar").inner_text())

    def dismiss_dialogs(self) -> int:
        """Close any modal dialog (e.g. a kernel message) with Escape; return how many were closed."""
        n = 0
        while n < 5 and self.page.locator(".jp-Dialog").count():
            self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(200)
            n += 1
        return n

    # ----------------------------------------------------------------- open / run
    def _app_loaded(self) -> bool:
        """Whether this tab already runs JupyterLab from our server."""
        if not self.page.url.startswith(self.server.base_url + "/lab"):
            return False
        return bool(self.page.evaluate("() => !!(window.jupyterapp && window.jupyterapp.shell)"))

    def open(
        self,
        name: str,
        *,
        timeout: float = 60.0,
        reload: bool = False,
        prestart_kernel: bool = True,
    ) -> None:
        """Open notebook ``name`` and wait until it is rendered and its kernel is idle.

        If this tab already shows JupyterLab from the server (and not ``reload``), the notebook is opened
        in the running app with the ``docmanager:open`` command (as from the file browser: ~1 s instead of
        a page load of ~7 s); otherwise the tab loads ``/lab/tree/NAME``. With ``prestart_kernel`` a
        session for the notebook is created through the REST API first, so the kernel starts while the
        page loads; JupyterLab then attaches to it as it does when a notebook is reopened."""
        t0 = time.monotonic()
        if prestart_kernel:
            self.server.start_session(name)
        if not reload and self._app_loaded():
            self.page.evaluate(
                "(name) => { window.jupyterapp.commands.execute('docmanager:open', {path: name}); }", name
            )
        else:
            self.page.goto(self.server.url(name), wait_until="domcontentloaded")
        try:
            self.page.wait_for_function(
                """(name) => {
                  const app = window.jupyterapp;
                  if (!app || !app.shell || !app.restored) return false;
                  // Wait for the workspace restore to finish: it activates the tab it saved last.
                  if (!app.__harnessRestored) {
                    if (!app.__harnessHooked) {
                      app.__harnessHooked = true;
                      app.restored.then(() => { app.__harnessRestored = true; });
                    }
                    return false;
                  }
                  for (const w of app.shell.widgets('main')) {
                    if (w.context && w.context.path === name && w.content && w.content.node) return true;
                  }
                  return false;
                }""",
                arg=name,
                timeout=timeout * 1000,
                polling=100,
            )
        except Exception as exc:
            raise TimeoutError(
                f"notebook {name} did not open in {timeout}s; console: {self.console[-20:]}"
            ) from exc
        self.panel_id = str(
            self.page.evaluate(
                """(name) => {
                  const app = window.jupyterapp;
                  for (const w of app.shell.widgets('main')) {
                    if (w.context && w.context.path === name) { app.shell.activateById(w.id); return w.id; }
                  }
                }""",
                name,
            )
        )
        self.name = name
        left = max(5.0, timeout - (time.monotonic() - t0))
        self._wait_panel(
            """
            // Other notebooks restored from the workspace can grab focus (and so the front tab) while
            // they load, e.g. when a widget output of theirs fails to render: take the tab back and
            // require it to stay in front for a moment.
            const shell = window.jupyterapp.shell;
            if (shell.currentWidget !== panel || !panel.isVisible) {
              shell.activateById(panel.id);
              panel.__harnessFrontSince = null;
              return false;
            }
            if (!panel.__harnessFrontSince) panel.__harnessFrontSince = Date.now();
            const ctx = panel.sessionContext;
            const nb = panel.content;
            return panel.context.isReady && ctx.session && ctx.session.kernel
              && ctx.kernelDisplayStatus === 'idle'
              && nb.widgets.length === nb.model.cells.length
              && panel.node.querySelector('.jp-Notebook') !== null
              && Date.now() - panel.__harnessFrontSince > 500;
            """,
            timeout=left,
            what=f"notebook {name} loaded with an idle kernel",
        )
        # The same fact as a person sees it: the status bar says Idle.
        self.page.locator("#jp-main-statusbar", has_text="Idle").wait_for(timeout=10_000)
        self.dismiss_dialogs()

    def reopen(self, *, timeout: float = 60.0) -> None:
        """Close the notebook's tab (no questions: it is marked clean) and open the file again, as a person
        would from the file browser: outputs come from disk. Faster than :meth:`reload`."""
        if self.name is None:
            raise RuntimeError("no notebook open")
        name = self.name
        self._panel_eval("panel.context.model.dirty = false; panel.dispose(); return true;")
        self.page.wait_for_function(
            "(name) => ![...window.jupyterapp.shell.widgets('main')]"
            ".some(w => w.context && w.context.path === name)",
            arg=name,
            timeout=10_000,
        )
        self.open(name, timeout=timeout)

    def reload(self, *, timeout: float = 60.0) -> None:
        """Reload the browser tab and wait for the same notebook again."""
        if self.name is None:
            raise RuntimeError("no notebook open")
        self.open(self.name, timeout=timeout, reload=True)

    def activate(self) -> None:
        """Bring the opened notebook's tab to the front (as clicking its tab would)."""
        self._wait_panel(
            "const shell = window.jupyterapp.shell;"
            "if (shell.currentWidget === panel && panel.isVisible) return true;"
            "shell.activateById(panel.id); return false;",
            timeout=10,
            what="the notebook tab to show",
        )

    def run_cell(self, i: int, *, key: str = "Control+Enter", tries: int = 3) -> None:
        """Select cell ``i`` (click its prompt: command mode) and press ``key`` (Ctrl+Enter runs in place,
        Shift+Enter runs and advances). Verify the prompt turns ``[*]`` or a new ``[n]``; retry if the
        key press was ignored, finally falling back to the ``notebook:run-cell`` command."""
        self.activate()
        before = self.prompt(i)
        for _ in range(tries):
            self.cell(i).locator(".jp-InputArea-prompt").click()
            self.page.keyboard.press(key)
            if self._prompt_changed(i, before, timeout=3.0):
                return
        self._panel_eval(
            "panel.content.activeCellIndex = args[0]; "
            "window.jupyterapp.commands.execute('notebook:run-cell'); return true;",
            i,
        )
        if not self._prompt_changed(i, before, timeout=5.0):
            raise RuntimeError(f"cell {i} did not start running (prompt stayed {before!r})")

    def _prompt_changed(self, i: int, before: str, *, timeout: float) -> bool:
        try:
            self._wait_panel(
                """
                const cell = panel.content.widgets[args[0]];
                const p = cell && cell.node.querySelector('.jp-InputArea-prompt');
                if (!p) return false;
                const t = p.innerText.trim();
                return t === '[*]:' || (t !== args[1] && """
                + _PROMPT_NUMBER_JS
                + """.test(t));
                """,
                i,
                before,
                timeout=timeout,
                what=f"cell {i} to start",
            )
            return True
        except TimeoutError:
            return False

    def run_all(self) -> None:
        """Run every cell (the ``notebook:run-all-cells`` command, as in Run > Run All Cells)."""
        self._panel_eval(
            "window.jupyterapp.shell.activateById(panel.id); "
            "window.jupyterapp.commands.execute('notebook:run-all-cells'); return true;"
        )

    def wait_cell_idle(self, i: int, timeout: float = 30.0) -> str:
        """Wait until cell ``i``'s prompt shows a number (not ``*``/blank); return the prompt."""
        self._wait_panel(
            """
            const cell = panel.content.widgets[args[0]];
            const p = cell && cell.node.querySelector('.jp-InputArea-prompt');
            return !!p && """
            + _PROMPT_NUMBER_JS
            + """.test(p.innerText.trim());
            """,
            i,
            timeout=timeout,
            what=f"cell {i} to finish",
        )
        return self.prompt(i)

    def wait_all_idle(self, timeout: float = 60.0) -> None:
        """Wait until every code cell shows a number and the kernel is idle."""
        self._wait_panel(
            """
            const ok = panel.content.widgets.every(c => {
              if (c.model.type !== 'code') return true;
              const p = c.node.querySelector('.jp-InputArea-prompt');
              return !!p && """
            + _PROMPT_NUMBER_JS
            + """.test(p.innerText.trim());
            });
            return ok && panel.sessionContext.kernelDisplayStatus === 'idle';
            """,
            timeout=timeout,
            what="all cells to finish",
        )

    # ----------------------------------------------------------------- outputs
    def cell_output_text(self, i: int) -> str:
        """The visible text of cell ``i``'s outputs, one output after the other, without output prompts."""
        return str(self._panel_eval(_OUTPUT_TEXT_JS + "return outputText(args[0]);", i))

    def cell_output_html(self, i: int) -> str:
        """The HTML of cell ``i``'s output area ('' if none)."""
        return str(
            self._panel_eval(
                "const c = panel.content.widgets[args[0]];"
                "const o = c && c.node.querySelector('.jp-Cell-outputArea');"
                "return o ? o.innerHTML : '';",
                i,
            )
        )

    def cell_outputs_model(self, i: int) -> list[dict[str, Any]]:
        """The outputs of cell ``i`` as the notebook model holds them (what a save would write)."""
        result: list[dict[str, Any]] = self._panel_eval(
            "return panel.content.widgets[args[0]].model.outputs.toJSON();", i
        )
        return result

    def wait_for_text_in_output(self, i: int, text: str, timeout: float = 30.0) -> float:
        """Wait until ``text`` is in cell ``i``'s rendered output; return the seconds waited."""
        t0 = time.monotonic()
        self._wait_panel(
            _OUTPUT_TEXT_JS + "return outputText(args[0]).includes(args[1]);",
            i,
            text,
            timeout=timeout,
            what=f"{text!r} in the output of cell {i} (now {self.cell_output_text(i)!r})",
        )
        return time.monotonic() - t0

    def wait_for_selector_in_output(self, i: int, selector: str, timeout: float = 30.0) -> float:
        """Wait until an element matching the CSS ``selector`` is in cell ``i``'s output; return seconds."""
        t0 = time.monotonic()
        self._wait_panel(
            """
            const c = panel.content.widgets[args[0]];
            const o = c && c.node.querySelector('.jp-Cell-outputArea');
            return !!o && o.querySelector(args[1]) !== null;
            """,
            i,
            selector,
            timeout=timeout,
            what=f"{selector!r} in the output of cell {i}",
        )
        return time.monotonic() - t0

    # ----------------------------------------------------------------- save / screenshot
    def is_dirty(self) -> bool:
        return bool(self._panel_eval("return panel.context.model.dirty;"))

    def save(self, *, timeout: float = 15.0) -> dict[str, Any]:
        """Save with Ctrl+S (falling back to the ``docmanager:save`` command) and wait until the server's
        copy changed (contents API ``last_modified``) and the document is no longer dirty.
        Return the notebook as saved on disk."""
        if self.name is None:
            raise RuntimeError("no notebook open")
        before = self.server.contents(self.name)["last_modified"]

        def saved(wait: float) -> bool:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.server.contents(self.name or "")["last_modified"] != before and not self.is_dirty():
                    return True
                time.sleep(0.1)
            return False

        self.activate()
        self._panel_eval("panel.content.node.focus(); return true;")
        self.page.keyboard.press("Control+s")
        if not saved(min(5.0, timeout)):
            self._panel_eval(
                "window.jupyterapp.shell.activateById(panel.id); "
                "window.jupyterapp.commands.execute('docmanager:save'); return true;"
            )
            if not saved(timeout):
                raise TimeoutError(f"{self.name} was not saved within {timeout}s")
        self.dismiss_dialogs()
        return self.server.read_notebook(self.name)

    def screenshot(self, path: Path | str, *, what: Literal["page", "notebook"] = "page") -> Path:
        """Write a PNG of the whole page or only the notebook panel to ``path`` (parents are created)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        if what == "notebook" and self.panel_id is not None:
            self.activate()
            self.page.locator(f'[id="{self.panel_id}"]').screenshot(path=str(out))
        else:
            self.page.screenshot(path=str(out), full_page=True)
        return out


@contextlib.contextmanager
def open_lab_page(server: LabServer, name: str, **kwargs: Any) -> Iterator[LabPage]:
    """Open ``name`` on ``server`` in a fresh browser; always closes the browser."""
    page = LabPage(server, **kwargs)
    try:
        page.open(name)
        yield page
    finally:
        page.close()
