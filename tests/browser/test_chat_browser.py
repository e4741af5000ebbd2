"""``%%chat`` in a real JupyterLab in headless Chromium, against the local relay (tests/relay.py).

What a person sees: the answer grows while the cell runs (plain display outputs, never a widget), then
stays as one normal rendered output that survives a save, a kernel shutdown and a reload; model output
with HTML/JS in it never runs; reasoning, errors, Ctrl-C, images and tool rounds look right. Screenshots
go to tests/artifacts/browser/chat-*.png.

One relay, one JupyterLab and one browser tab serve the whole browser suite (tests/browser/conftest.py);
each test opens its own notebook (its own kernel) inside the loaded app and depends on no other test.
"""

from __future__ import annotations

import json
import re
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._util import tool_call_stream
from tests.browser.harness import LabPage, LabServer
from tests.relay import HOSTILE_SAMPLE, REASONING_SAMPLE, Relay, Scripted, stream_of

pytestmark = pytest.mark.browser

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_SELECTOR = ".jupyter-widgets, .widget-html, .widget-output"
LIVE = ".shenma-live-status"  # the status line of a reply that is still streaming
LOADING = "Loading widget"
MODEL = "gpt-4o-mini"
FINAL_MIMES = {"text/html", "text/markdown", "text/plain"}
STDERR = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'
PWNED_FLAGS = ("__pwned", "__pwned2", "__pwned3", "__pwned4")

OTHER_SHOTS = ("image-question.png", "tool-round.png")
# The streaming test's notebook.
CHAT_CELLS = ["%load_ext shenma_magic", "%%chat\n/slow 40 4", "%%chat\n/markdown"]

# What the tests measured, written to chat-timings.json at the end (no test reads another's entries).
_state: dict[str, Any] = {}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def shots(browser_artifacts_dir: Path) -> Iterator[Path]:
    """The artifacts dir (old chat-*.png removed); at the end the measurements go to chat-timings.json."""
    for old in [*browser_artifacts_dir.glob("chat-*.png"), *(browser_artifacts_dir / n for n in OTHER_SHOTS)]:
        old.unlink(missing_ok=True)
    yield browser_artifacts_dir
    (browser_artifacts_dir / "chat-timings.json").write_text(json.dumps(_state, indent=1, ensure_ascii=False))


@pytest.fixture(autouse=True)
def _timed(request: pytest.FixtureRequest) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    _state.setdefault("test_seconds", {})[request.node.name] = round(time.monotonic() - t0, 1)


# --------------------------------------------------------------------------- helpers


def shot(page: LabPage, path: Path, cell: int | None = None) -> Path:
    """A screenshot of the notebook panel, with cell ``cell`` (its output's end) scrolled into view."""
    if cell is not None:
        page.eval(
            "([id, i]) => { const p = [...window.jupyterapp.shell.widgets('main')].find(w => w.id === id);"
            " const c = p.content.widgets[i]; (c.node.querySelector('.jp-Cell-outputArea') || c.node)"
            ".scrollIntoView({block: 'end'}); }",
            [page.panel_id, cell],
        )
        page.page.wait_for_timeout(100)
    return page.screenshot(path, what="notebook")


def count(page: LabPage, i: int, selector: str) -> int:
    return int(page.output_locator(i).locator(selector).count())


def flags(page: LabPage) -> dict[str, str]:
    """``typeof window.__pwned*``: every one must stay 'undefined'."""
    result: dict[str, str] = page.eval(
        "(names) => Object.fromEntries(names.map(n => [n, typeof window[n]]))", list(PWNED_FLAGS)
    )
    return result


# Everything in one cell's output DOM that could run script or navigate to javascript:.
_DANGER_JS = """
([id, i]) => {
  const p = [...window.jupyterapp.shell.widgets('main')].find(w => w.id === id);
  const o = p.content.widgets[i].node.querySelector('.jp-Cell-outputArea');
  if (!o) return ['no output area'];
  const found = [];
  for (const el of o.querySelectorAll('script, iframe, object, embed, frame')) found.push(el.outerHTML);
  for (const el of o.querySelectorAll('*')) {
    for (const a of el.attributes) {
      const name = a.name.toLowerCase(), what = `${el.tagName} ${a.name}=${a.value}`;
      if (name.startsWith('on')) found.push(what);
      const url = ['href', 'src', 'action', 'formaction', 'xlink:href'].includes(name);
      if (url && /^\\s*(javascript|vbscript|data:text)/i.test(a.value)) found.push(what);
    }
  }
  return found;
}
"""


def dangerous_elements(page: LabPage, i: int) -> list[str]:
    result: list[str] = page.eval(_DANGER_JS, [page.panel_id, i])
    return result


# Anywhere in the document: a script holding the payload, or an element whose handler/URL attribute does.
_PAGE_DANGER_JS = """
() => {
  const code = (a) => {
    const n = a.name.toLowerCase();
    return n.startsWith('on') || ['src', 'href', 'srcdoc'].includes(n);
  };
  return [...document.querySelectorAll('*')].filter(el => el.tagName === 'SCRIPT'
      ? el.textContent.includes('__pwned')
      : [...el.attributes].some(a => code(a) && a.value.includes('__pwned')))
    .map(el => el.outerHTML.slice(0, 200));
}
"""


def payload_anywhere(page: LabPage) -> list[str]:
    """Elements of the whole page that carry the hostile payload as code (not as text), plus console lines
    that mention it: all must be empty."""
    found: list[str] = page.eval(_PAGE_DANGER_JS)
    return found + [line for line in page.console if "__pwned" in line]


def words_shown(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\bword(\d+)\b", text)]


def final_output(page: LabPage, i: int) -> dict[str, Any]:
    """Cell ``i``'s outputs in the notebook model must be exactly one final display_data: return it."""
    model = page.cell_outputs_model(i)
    assert len(model) == 1, f"cell {i}: expected one output, got {model}"
    (out,) = model
    assert out["output_type"] == "display_data"
    assert set(out["data"]) == FINAL_MIMES, out["data"].keys()
    return out


def joined(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def words_of(text: str) -> list[str]:
    """Word-sized stream pieces (whitespace attached) that concatenate back to ``text``."""
    return re.findall(r"\s*\S+\s*", text)


def gradient_png(side: int = 64) -> bytes:
    """A side x side RGB gradient PNG, built with zlib and struct only."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // side, y * 255 // side, 160)) for x in range(side))
        for y in range(side)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def open_fresh(server: LabServer, page: LabPage, name: str, cells: list[str]) -> None:
    server.write_notebook(name, cells)
    page.open(name)


def run(page: LabPage, i: int, timeout: float = 30.0) -> str:
    page.run_cell(i)
    return page.wait_cell_idle(i, timeout=timeout)


# --------------------------------------------------------------------------- 1. live streaming


def test_streams_live_then_leaves_rendered_markdown(server: LabServer, page: LabPage, shots: Path) -> None:
    open_fresh(server, page, "chat.ipynb", CHAT_CELLS)
    run(page, 0)
    assert page.cell_output_text(0) == ""

    page.run_cell(1)
    t_run = time.monotonic()
    page.wait_for_text_in_output(1, "word1", timeout=15)
    t_first = time.monotonic()
    text_first, prompt_first = page.cell_output_text(1), page.prompt(1)
    assert prompt_first == "[*]:", f"the cell had finished when its first words showed: {text_first!r}"
    assert 40 not in words_shown(text_first)
    assert count(page, 1, LIVE) == 1, page.cell_output_html(1)

    # Sample what the page shows until the cell ends: the words must grow in several steps, live.
    timeline: list[tuple[float, int, int, str]] = []
    mid_shot: Path | None = None
    mid_html = ""
    while page.prompt(1) == "[*]:" and time.monotonic() - t_run < 20:
        text = page.cell_output_text(1)
        shown = words_shown(text)
        timeline.append((time.monotonic() - t_run, max(shown, default=0), count(page, 1, LIVE), text))
        assert count(page, 1, WIDGET_SELECTOR) == 0, "a widget in the live view"
        if mid_shot is None and 12 <= max(shown, default=0) <= 32:
            mid_html = page.cell_output_html(1)
            mid_shot = shot(page, shots / "chat-streaming-mid.png", 1)
        page.page.wait_for_timeout(150)
    page.wait_cell_idle(1, timeout=15)
    t_end = time.monotonic()
    _state["stream_timing"] = {
        "first_text_s": round(t_first - t_run, 2),
        "end_s": round(t_end - t_run, 2),
        "samples (s: last word shown, live)": " ".join(f"{t:.2f}:{n},{w}" for t, n, w, _ in timeline),
    }

    live = [(n, w, text) for _, n, w, text in timeline if 0 < n < 40]
    assert len({n for n, _, _ in live}) >= 4, f"the answer did not grow in steps: {_state['stream_timing']}"
    assert all(w > 0 for _, w, _ in live), "no live status line while streaming"
    assert any("streaming" in text for _, _, text in live), "no status line while streaming"
    assert t_end - t_first > 2.0, f"first text only {t_end - t_first:.2f}s before the end of a ~4 s stream"
    assert mid_shot is not None and "shenma-live-status" in mid_html

    # After the end: one rendered output, no widget left, the status line under the answer.
    final = final_output(page, 1)
    assert WIDGET_VIEW not in final["data"]
    assert count(page, 1, WIDGET_SELECTOR) == 0 and count(page, 1, LIVE) == 0, page.cell_output_html(1)
    text = page.cell_output_text(1)
    assert LOADING not in text
    assert words_shown(text) == list(range(1, 41))
    status = text.strip().splitlines()[-1]
    assert MODEL in status and "tokens" in status, status
    assert "streaming" not in text
    assert count(page, 1, ".jp-RenderedHTMLCommon p") >= 1
    shot(page, shots / "chat-streaming-done.png", 1)

    # /markdown: heading, list, table, code with literal < and &.
    run(page, 2)
    page.wait_for_selector_in_output(2, "table", timeout=10)
    final_output(page, 2)
    out = page.output_locator(2)
    assert count(page, 2, WIDGET_SELECTOR) == 0
    assert out.locator("h1, h2").first.inner_text() == "Quarterly report"
    assert out.locator("table th").all_inner_texts() == ["Name", "Value"]
    assert out.locator("table td").all_inner_texts() == ["alpha", "1", "beta & gamma", "2"]
    code = out.locator("pre code").inner_text()
    assert 'if a < b and c & d:\n    print("<tag>")' in code, code
    assert out.locator("li").count() == 3
    assert out.locator("li").first.inner_text() == "first item"
    assert out.locator("li li").inner_text() == "nested item"
    assert "inline <code> & more" in out.locator("p code").all_inner_texts()
    assert out.locator("strong").first.inner_text() == "bold"
    shot(page, shots / "chat-markdown.png", 2)


# --------------------------------------------------------------------------- 2. saved notebook


def test_saved_notebook_keeps_the_answer_without_kernel_or_widgets(
    server: LabServer, page: LabPage, shots: Path
) -> None:
    open_fresh(
        server, page, "saved.ipynb", ["%load_ext shenma_magic", "%%chat\n/slow 8 0.5", "%%chat\n/markdown"]
    )
    for i in range(3):
        run(page, i)
    page.wait_for_selector_in_output(2, "table", timeout=10)
    nb = page.save()
    for i, must_have in ((1, "word1 word2"), (2, "Quarterly report")):
        outs = nb["cells"][i]["outputs"]
        assert len(outs) == 1, outs
        (out,) = outs
        assert out["output_type"] == "display_data"
        assert WIDGET_VIEW not in out["data"]
        assert set(out["data"]) == FINAL_MIMES
        for mime in FINAL_MIMES:
            assert must_have in joined(out["data"][mime]), (mime, out["data"][mime])
    assert "<table" in joined(nb["cells"][2]["outputs"][0]["data"]["text/html"])
    # No widget state saved: nothing of the answer outside the outputs.
    assert "word1" not in str(nb["metadata"].get("widgets", ""))

    server.shutdown_kernels()
    assert server.kernels() == []
    page.reload()  # a fresh kernel may start; nothing is run
    page.wait_for_selector_in_output(2, "table", timeout=15)
    assert page.prompt(1) == "[2]:" and page.prompt(2) == "[3]:"
    text = page.cell_output_text(1)
    assert words_shown(text) == list(range(1, 9))
    assert MODEL in text and "tokens" in text
    assert LOADING not in text and LOADING not in page.cell_output_text(2)
    assert page.output_locator(2).locator("table td").all_inner_texts() == ["alpha", "1", "beta & gamma", "2"]
    assert count(page, 1, WIDGET_SELECTOR) == 0 and count(page, 2, WIDGET_SELECTOR) == 0
    shot(page, shots / "chat-reopened.png", 2)


# --------------------------------------------------------------------------- 3. hostile output


def test_hostile_answer_never_runs_script(
    server: LabServer, page: LabPage, relay: Relay, shots: Path
) -> None:
    open_fresh(
        server,
        page,
        "hostile.ipynb",
        ["%load_ext shenma_magic", "%%chat\n/hostile", "%%chat\nthe same, slowly"],
    )
    run(page, 0)
    run(page, 1)
    page.wait_for_text_in_output(1, "End of hostile content.", timeout=10)
    final_output(page, 1)
    assert flags(page) == dict.fromkeys(PWNED_FLAGS, "undefined")
    assert dangerous_elements(page, 1) == []
    text = page.cell_output_text(1)
    assert "<script>window.__pwned=1</script>" in text
    assert "<img src=x onerror=" in text
    assert '<iframe src="javascript:' in text
    # The link with a javascript: target is not a link (markdown-it refuses it); click it if it ever is.
    links = page.output_locator(1).locator("a", has_text="click")
    if links.count():
        links.first.click()
        page.page.wait_for_timeout(300)
    _state["hostile_click_is_link"] = links.count()
    assert flags(page) == dict.fromkeys(PWNED_FLAGS, "undefined")
    assert payload_anywhere(page) == []
    shot(page, shots / "chat-hostile.png", 1)

    # The same Markdown streamed slowly: checked again and again while the live view shows it.
    relay.enqueue(Scripted(chunks=stream_of(words_of(HOSTILE_SAMPLE), delay=0.12)))
    page.run_cell(2)
    page.wait_for_text_in_output(2, "Hostile", timeout=10)
    checks = 0
    saw_script_text_live = saw_finished_blocks = False
    while page.prompt(2) == "[*]:":
        if count(page, 2, LIVE) == 0:
            break
        assert flags(page) == dict.fromkeys(PWNED_FLAGS, "undefined")
        assert dangerous_elements(page, 2) == []
        saw_script_text_live |= "<script>" in page.cell_output_text(2)
        # Finished blocks sit in outputs of their own above the growing tail: both are checked.
        saw_finished_blocks |= count(page, 2, ".jp-OutputArea-child .shenma-block") > 1
        checks += 1
        if checks == 8:
            shot(page, shots / "chat-hostile-live.png", 2)
        page.page.wait_for_timeout(100)
    page.wait_cell_idle(2, timeout=15)
    _state["hostile_live_checks"] = checks
    assert checks >= 5, f"only {checks} checks while the live view showed the hostile answer"
    assert saw_script_text_live and saw_finished_blocks
    assert flags(page) == dict.fromkeys(PWNED_FLAGS, "undefined")
    assert dangerous_elements(page, 2) == []
    assert payload_anywhere(page) == []
    assert "End of hostile content." in page.cell_output_text(2)
    # The Markdown copy (what nbconvert / GitHub would render) is inert too.
    md = joined(final_output(page, 2)["data"]["text/markdown"])
    assert not re.search(r"<[A-Za-z!/?]", md), md  # no tag, comment or autolink can form
    from markdown_it import MarkdownIt

    as_rendered = MarkdownIt("commonmark").render(md)  # as nbconvert or GitHub would render the copy
    assert "javascript:" not in "".join(re.findall(r'href="[^"]*"', as_rendered)), as_rendered
    assert "click" in as_rendered


# --------------------------------------------------------------------------- 4. reasoning and errors


def test_reasoning_folds_away_and_errors_are_one_line(server: LabServer, page: LabPage, shots: Path) -> None:
    open_fresh(
        server,
        page,
        "reason.ipynb",
        ["%load_ext shenma_magic", "%%chat\n/reason", "%%chat\n/error 401 无效的令牌"],
    )
    run(page, 0)
    run(page, 1)
    page.wait_for_selector_in_output(1, "details", timeout=10)
    final_output(page, 1)
    details = page.output_locator(1).locator("details")
    assert details.count() == 1
    assert details.evaluate("d => d.open") is False
    assert "reasoning" in details.locator("summary").inner_text()
    assert REASONING_SAMPLE in details.evaluate("d => d.textContent")
    assert "Answer: 42" not in details.evaluate("d => d.textContent")
    text = page.cell_output_text(1)
    assert "Answer: 42" in text
    assert "step by step" not in text, "the reasoning is shown although its <details> is closed"
    shot(page, shots / "chat-reasoning.png", 1)

    run(page, 2)
    page.wait_for_text_in_output(2, "无效的令牌", timeout=10)
    text = page.cell_output_text(2)
    lines = [line for line in text.splitlines() if line.strip()]
    assert len([line for line in lines if "无效的令牌" in line]) == 1, text
    assert "%chat key" in text, text
    assert "Traceback" not in text
    assert count(page, 2, STDERR) == 0, page.cell_output_html(2)
    final_output(page, 2)  # the only output: no error output, no stream to stderr
    _state["error_text"] = text
    shot(page, shots / "chat-error.png", 2)


# --------------------------------------------------------------------------- 5. interrupt


def test_interrupt_keeps_the_partial_answer(
    server: LabServer, page: LabPage, relay: Relay, shots: Path
) -> None:
    open_fresh(
        server,
        page,
        "interrupt.ipynb",
        ["%load_ext shenma_magic", "%%chat -o r\n/slow 200 20", "print(r.complete, len(r) > 0)"],
    )
    run(page, 0)
    page.run_cell(1)
    page.wait_for_text_in_output(1, "word3", timeout=15)
    assert page.prompt(1) == "[*]:"
    page.activate()
    t0 = time.monotonic()
    page.eval("() => window.jupyterapp.commands.execute('kernelmenu:interrupt')")
    page.wait_cell_idle(1, timeout=10)
    took = time.monotonic() - t0
    _state["interrupt_s"] = round(took, 2)
    assert took < 3.0, f"the cell took {took:.2f}s to stop after the interrupt"

    out = page.output_locator(1)
    text = page.cell_output_text(1)
    shown = words_shown(text)
    assert shown and shown == list(range(1, len(shown) + 1)) and len(shown) < 200, text
    assert count(page, 1, WIDGET_SELECTOR) == 0 and LOADING not in text
    display = [o for o in page.cell_outputs_model(1) if o["output_type"] == "display_data"]
    assert len(display) == 1 and set(display[0]["data"]) == FINAL_MIMES
    assert "interrupted" in text
    assert "Traceback" not in text
    errors = out.locator(STDERR).all_inner_texts()
    assert all(len([ln for ln in e.splitlines() if ln.strip()]) <= 1 for e in errors), errors
    _state["interrupt_text"] = text
    shot(page, shots / "chat-interrupted.png", 1)
    # The HTTP response was closed, not left streaming to nobody.
    assert relay.wait(lambda: relay.chat_requests[-1].outcome == "client_closed", timeout=5)

    run(page, 2)
    assert page.cell_output_text(2).strip() == "False True"


# --------------------------------------------------------------------------- 6. images and tools


def test_image_question_and_tool_round(server: LabServer, page: LabPage, relay: Relay, shots: Path) -> None:
    png = gradient_png()
    open_fresh(
        server,
        page,
        "tools.ipynb",
        [
            "%load_ext shenma_magic",
            f"open('gradient.png', 'wb').write({png!r})",
            "%%chat --image gradient.png\nWhat is in this picture?",
            "def add(a: int, b: int) -> int:\n    return a + b\n\n"
            "import shenma_magic\nshenma_magic.tools().add(add, trusted=True)",
            "%%chat\nWhat is 1 + 2? Use the add tool.",
        ],
    )
    run(page, 0)
    run(page, 1)
    assert page.cell_output_text(1).strip() == str(len(png))

    run(page, 2)
    page.wait_for_text_in_output(2, "echo: What is in this picture?", timeout=10)
    img = page.output_locator(2).locator("img")
    assert img.count() == 1
    assert (img.get_attribute("src") or "").startswith("data:image/")
    assert img.evaluate("i => i.complete && i.naturalWidth > 0")
    assert "gradient.png" in page.cell_output_text(2)
    assert count(page, 2, WIDGET_SELECTOR) == 0
    parts = relay.chat_requests[-1].json["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    shot(page, shots / "image-question.png", 2)

    run(page, 3)
    relay.enqueue(
        Scripted(chunks=tool_call_stream("add", '{"a": 1, "b": 2}')),
        Scripted(
            chunks=stream_of(["1 + 2 ", "= **3**."], usage={"prompt_tokens": 30, "completion_tokens": 4})
        ),
    )
    before = len(relay.chat_requests)
    run(page, 4)
    page.wait_for_text_in_output(4, "1 + 2 = 3.", timeout=10)
    text = page.cell_output_text(4)
    assert "ran: add(a=1, b=2) → 3" in text, text
    assert text.index("ran: add") < text.index("1 + 2 = 3.")
    assert count(page, 4, WIDGET_SELECTOR) == 0 and LOADING not in text
    assert page.output_locator(4).locator("strong", has_text="3").count() == 1
    first, second = relay.chat_requests[before:]
    assert first.json["tools"][0]["function"]["name"] == "add"
    assert second.json["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "3"}
    _state["tool_text"] = text
    shot(page, shots / "tool-round.png", 4)
