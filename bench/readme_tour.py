"""Prints the README tour's terminal output, reproducibly: each cell of the tour runs in a real IPython shell
(terminal view) against the local test relay, which answers with scripted streams.

    .venv/bin/python -m bench.readme_tour

Timings differ from run to run; everything else is what the README shows.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from tests.relay import Relay, Scripted, stream_of

KEY = "sk-README0123456789abcdefghijkl9f3a"
ANSWER = ["不是兄弟，", "周树人就是鲁迅：", "“鲁迅”是他 1918 年发表《狂人日记》时用的笔名。"]


@contextlib.contextmanager
def environment(relay: Relay) -> Iterator[None]:
    old = dict(os.environ)
    home = tempfile.mkdtemp(prefix="readme-tour-")
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SHENMA_MODEL"):
        os.environ.pop(var, None)
    os.environ.update(
        {
            "SHENMA_BASE_URL": relay.url,
            "SHENMA_API_KEY": KEY,
            "XDG_CONFIG_HOME": os.path.join(home, "config"),
            "XDG_DATA_HOME": os.path.join(home, "data"),
        }
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(old)


def run(shell: Any, source: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        shell.run_cell(source, store_history=False)
    return out.getvalue()


def show(title: str, source: str, output: str) -> None:
    print(f"### {title}\n")
    print("```text")
    print(source.rstrip())
    print("```\n")
    print("```text")
    print(output.rstrip())
    print("```\n")


def tour(relay: Relay, shell: Any) -> list[tuple[str, str, Callable[[], None]]]:
    usage = {"prompt_tokens": 27, "completion_tokens": 41}
    return [
        (
            "a first question",
            "%%chat -o r\n周树人和鲁迅是兄弟吗？",
            lambda: relay.enqueue(Scripted(chunks=stream_of(ANSWER, usage=usage, delay=0.05))),
        ),
        ("the bound reply", "r\n", lambda: None),
        ("what it knows", "r.usage, r.reasoning, r.error, r.complete", lambda: None),
        (
            "an error",
            "%%chat\n你好",
            lambda: relay.enqueue(Scripted.error(401, "无效的令牌 (request id: 20251126103055123)")),
        ),
    ]


def main() -> int:
    from IPython.core.interactiveshell import InteractiveShell

    with Relay() as relay, environment(relay):
        shell = InteractiveShell.instance(colors="nocolor")
        run(shell, "%load_ext shenma_magic")
        for title, source, script in tour(relay, shell):
            script()
            show(title, source, run(shell, source))
    return 0


if __name__ == "__main__":
    sys.exit(main())
