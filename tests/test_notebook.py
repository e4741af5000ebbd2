"""notebooks/quickstart.ipynb executed by nbclient with a real kernel against the local relay.

Checks what a saved notebook holds: every %%chat answer as text/markdown (and text/html, text/plain),
and no widget-only output left behind.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests._util import run_notebook
from tests.relay import Relay, Scripted, stream_of, tool_call_stream

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-NOTEBOOKKEY0123456789abcdef77aa"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def execute(nb: Any, relay: Relay, tmp_path: Path, hook: Any = None, **env: str) -> Any:
    settings = {
        "SHENMA_BASE_URL": relay.url,
        "SHENMA_API_KEY": KEY,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        **env,
    }
    return run_notebook(nb, env=settings, cwd=tmp_path, on_cell_execute=hook)


def chat_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%chat")]


@pytest.mark.slow
def test_quickstart_runs_and_saves_answers_as_markdown(relay: Relay, tmp_path: Path) -> None:
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)

    def hook(cell: Any, cell_index: int) -> None:
        # The tour's tool cell: the relay asks for the tool, as a model would, then answers with its result.
        if "Use the add tool" in cell.source:
            relay.enqueue(Scripted(chunks=tool_call_stream("add", '{"a": 1234, "b": 4321}')))

    execute(nb, relay, tmp_path, hook=hook)
    cells = chat_cells(nb)
    assert len(cells) >= 8
    for cell in cells:
        assert not any(WIDGET_MIME in o.get("data", {}) for o in cell.outputs), cell.source
        assert not any(o.output_type == "error" for o in cell.outputs), cell.source
    plain = [
        c for c in cells if "--json" not in c.source and "--image" not in c.source and "tool" not in c.source
    ]
    for cell in plain:
        rich = [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
        assert len(rich) == 1, (cell.source, cell.outputs)
        data = rich[0]["data"]
        assert data["text/plain"].startswith("echo:") and "echo:" in data["text/markdown"]
        assert "echo:" in data["text/html"]
        assert "gpt-4o-mini" in data["text/markdown"]  # the status line
    requests = [r.json for r in relay.chat_requests]
    # The follow-up carried the conversation; the --new cell started over with its system prompt.
    assert [m["role"] for m in requests[1]["messages"]] == ["user", "assistant", "user"]
    assert requests[2]["messages"][0] == {"role": "system", "content": "Answer in one short sentence."}
    assert len(requests[2]["messages"]) == 2
    # Variables were filled, JSON braces kept.
    assert any(
        m["content"].startswith('Explain SSE in one line. Reply as JSON like {"answer": "..."}.')
        for r in requests
        for m in r["messages"]
        if isinstance(m["content"], str)
    )
    # -o answer was usable from Python.
    printed = "".join(
        o.get("text", "") for c in nb.cells if c.source.startswith("print(answer") for o in c.outputs
    )
    assert "ECHO: LIST THREE PRIME NUMBERS" in printed and "stop True" in printed
    # JSON: the request asked for it, and -o got a dict.
    json_request = next(r for r in requests if "response_format" in r)
    assert json_request["response_format"] == {"type": "json_object"}
    info = next(c for c in nb.cells if c.source == "info")
    assert "'echo':" in info.outputs[0]["data"]["text/plain"]
    # The image went as a content part.
    image_request = next(r for r in requests if isinstance(r["messages"][-1]["content"], list))
    assert image_request["messages"][-1]["content"][1]["type"] == "image_url"
    # The tool round: offered, called, result sent back, answer shown.
    tool_cell = next(c for c in cells if "Use the add tool" in c.source)
    shown = json.dumps(tool_cell.outputs, ensure_ascii=False)
    assert "ran: add(a=1234, b=4321)" in shown and "5555" in shown
    assert "echo: tool said 5555" in shown
    tool_request = next(r for r in requests if any(m.get("role") == "tool" for m in r["messages"]))
    assert any(m.get("role") == "tool" and m["content"] == "5555" for m in tool_request["messages"])
    assert tool_request["tools"][0]["function"]["name"] == "add"
    # Usage totals.
    usage = "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code" and "%chat usage" in c.source
        for o in c.outputs
    )
    assert "gpt-4o-mini" in usage and "calls" in usage
    # The plain-Python section: Session carried its own conversation on.
    session_cell = next(c for c in nb.cells if "Session()" in c.source)
    shown = json.dumps(session_cell.outputs, ensure_ascii=False)
    assert "echo: 周树人和鲁迅是兄弟吗？" in shown and "['user', 'assistant', 'user', 'assistant']" in shown
    # The key is nowhere in the saved notebook; only its mask may be.
    saved = json.dumps(nb, ensure_ascii=False)
    assert KEY not in saved
    assert "sk-…77aa" in saved


@pytest.mark.slow
def test_error_and_reasoning_are_saved_too(relay: Relay, tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext shenma_magic"),
        nbformat.v4.new_code_cell("%%chat -o r\nthink first"),
        nbformat.v4.new_code_cell("%%chat\nthis fails"),
        nbformat.v4.new_code_cell("%%chat\nthis works again"),
    ]
    relay.enqueue(
        Scripted(chunks=stream_of(["# 答案\n\n", "**42**"], reasoning=["让我想想", "……"])),
        Scripted.error(503, "当前分组 default 下对于模型 gpt-4o-mini 无可用渠道"),
    )
    execute(nb, relay, tmp_path)
    reasoning, failed, works = (c.outputs for c in nb.cells[1:])
    data = reasoning[-1]["data"]
    assert re.search(r"<h1[^>]*>答案</h1>", data["text/html"]) and "<strong>42</strong>" in data["text/html"]
    assert "让我想想……" in data["text/html"] and "<details" in data["text/html"]
    assert data["text/plain"] == "# 答案\n\n**42**"  # the raw answer, reasoning apart
    fail = failed[-1]["data"]
    assert "无可用渠道" in fail["text/markdown"] and "no channel" in fail["text/markdown"]
    assert "echo: this works again" in works[-1]["data"]["text/plain"]
    assert not any(o.output_type == "error" for c in nb.cells for o in c.outputs)
