"""``--bg`` in terminal IPython, in a real terminal (tmux): the reply is printed once, above the prompt,
and the line being typed stays as it was."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.relay import Relay, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]
ROOT = Path(__file__).resolve().parent.parent


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def screen(session: str) -> list[str]:
    return [line.rstrip() for line in tmux("capture-pane", "-t", session, "-p").splitlines()]


def wait_screen(session: str, text: str, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = screen(session)
        if any(text in line for line in lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never shown:\n" + "\n".join(lines))
        time.sleep(0.1)


def start_ipython(relay: Relay, tmp_path: Path) -> str:
    session = f"shenma-bg-{uuid.uuid4().hex[:8]}"
    env = {
        "PYTHONPATH": str(ROOT),
        "SHENMA_BASE_URL": relay.url,
        "SHENMA_API_KEY": "sk-TERMINALKEY0123456789abcdef99",
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "TERM": "xterm-256color",
    }
    options = ["--no-banner", "--colors=NoColor", "--TerminalInteractiveShell.autosuggestions_provider=None"]
    command = " ".join(
        ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "IPython", *options]
    )
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", command)
    return session


@contextlib.contextmanager
def ipython_with_a_bg_cell(relay: Relay, tmp_path: Path, cell: str) -> Iterator[str]:
    """Terminal IPython in tmux with the extension loaded: ``cell`` (a ``--bg`` turn) is run, returns at
    once, and ``x = 12345`` is being typed at the next prompt while the reply streams. Yields the tmux
    session, killed afterwards."""
    session = start_ipython(relay, tmp_path)
    try:
        wait_screen(session, "In [1]:")
        tmux("send-keys", "-t", session, "%load_ext shenma_magic", "Enter")
        wait_screen(session, "In [2]:")
        tmux("send-keys", "-t", session, cell, "Enter")
        wait_screen(session, "In [3]:", timeout=1.5)  # the cell returned at once
        tmux("send-keys", "-t", session, "x = 12345")
        yield session
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


ANSWER = " ".join(f"word{i}" for i in range(1, 9))  # what /slow 8 2 answers


def test_a_background_reply_prints_above_the_prompt_and_keeps_the_typed_line(
    relay: Relay, tmp_path: Path
) -> None:
    cell = "get_ipython().run_cell_magic('chat', '--bg -o r', '/slow 8 2')"  # %%chat --bg in one line
    with ipython_with_a_bg_cell(relay, tmp_path, cell) as session:
        lines = wait_screen(session, "word8")
        shown = [line for line in lines if line]
        header = next(i for i, line in enumerate(shown) if line.startswith("[#1 gpt-4o-mini"))
        assert shown[header + 1] == ANSWER
        assert shown[header + 2].startswith("[gpt-4o-mini") and shown[header + 2].endswith("]")
        # The prompt comes back under the reply with the half-typed line intact.
        assert shown[-1] == "In [3]: x = 12345", shown
        assert sum("word1 " in line for line in shown) == 1  # printed once, not streamed over the prompt
        tmux("send-keys", "-t", session, "Enter", "print(r.complete, x)", "Enter")
        wait_screen(session, "True 12345")


def test_a_background_comparison_prints_each_answer_above_the_prompt_as_it_ends(
    relay: Relay, tmp_path: Path
) -> None:
    cell = "get_ipython().run_cell_magic('chat', '-m alpha,beta --bg -o rs', '/slow 8 2')"
    with ipython_with_a_bg_cell(relay, tmp_path, cell) as session:
        wait_until(lambda: sum(line == ANSWER for line in screen(session)) >= 2, 20, poll=0.1)
        shown = [line for line in screen(session) if line]
        for model in ("alpha", "beta"):
            at = shown.index(f"── {model} ──")
            assert shown[at - 1] == "[#1 alpha, beta: /slow 8 2]", shown
            assert shown[at + 1] == ANSWER and shown[at + 2].startswith(f"[{model}"), shown
        assert shown[-1] == "In [3]: x = 12345", shown  # the half-typed line is intact under the answers
        assert sum("word1 " in line for line in shown) == 2  # each printed once, not streamed over the prompt
        tmux("send-keys", "-t", session, "Enter", "print(sorted(rs), x)", "Enter")
        wait_screen(session, "['alpha', 'beta'] 12345")
