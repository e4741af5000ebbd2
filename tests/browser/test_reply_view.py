"""How a streamed reply looks in a real JupyterLab: math typeset, code highlighted, tables aligned, live and
final alike; nothing moves when the reply ends and the height only grows while it streams; the status
bar says Busy and the log console stays empty; and no part of a hostile reply makes the browser fetch
anything off 127.0.0.1 (shown, saved, reopened, exported with nbconvert).

Screenshots: tests/artifacts/browser/reply-{light,dark}.png (the reply next to a Markdown cell holding
the same text). With SHENMA_README_IMAGE=1 the README's notebooks/images/reply.png is written too.
"""

from __future__ import annotations

import base64
import http.server
import itertools
import os
import re
import socketserver
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.browser.harness import LabPage, LabServer
from tests.relay import Relay, Scripted, stream_of

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
LIVE = ".shenma-live-status"

MIXED = r"""# Streaming report: math, code and tables

Dollars inline: Euler's identity $e^{i\pi} + 1 = 0$ sits in the sentence.

Parentheses inline: \(a^2 + b^2 = c^2\) as models often write it; money stays text: it costs $5 and $10.

$$\int_0^1 x\,dx = \frac{1}{2}$$

\[ \{1, 2, 3\} \subset \mathbb{N} \]

\begin{align}
f(x) &= x^2 \\
f'(x) &= 2x
\end{align}

| Model | Latency (s) | Status |
| --- | ---: | :---: |
| gpt-4o-mini | 0.41 | ok |
| deepseek-r1 | 1.20 | slow |

```python
def mean(values: list[float]) -> float:
    total = sum(values)  # a float
    return total / len(values) if values else 0.0
```

1. First point with **bold** text.
2. Second point with `inline code`.

> A quote to finish the reply.
"""

# Per rAF frame: the output area's height, the box of each piece of content (keyed by its tag and first
# words, whatever wraps it), whether the status bar says Busy, whether the live view is up, whether the
# cell is still running.
SAMPLER = r"""
([id, i]) => {
  const CONTENT = 'h1, h2, p, li, table, pre, blockquote, mjx-container[display="true"]';
  const p = [...window.jupyterapp.shell.widgets('main')].find(w => w.id === id);
  const cell = p.content.widgets[i].node;
  const area = cell.querySelector('.jp-Cell-outputArea');
  window.__samples = []; window.__stop = false;
  const tick = () => {
    const top = area.getBoundingClientRect().top;
    const boxes = {};
    for (const b of area.querySelectorAll(CONTENT)) {
      const r = b.getBoundingClientRect();
      let key = b.tagName + ' ' + b.textContent.trim().slice(0, 40), n = 2;
      while (key in boxes) key = key.replace(/ #\d+$/, '') + ' #' + n++;
      boxes[key] = [r.top - top, r.height];
    }
    window.__samples.push({
      h: area.getBoundingClientRect().height, boxes,
      busy: document.querySelector('#jp-main-statusbar').innerText.includes('Busy'),
      live: area.querySelector('.shenma-live-status') !== null,
      running: cell.querySelector('.jp-InputArea-prompt').innerText.includes('*'),
      math: area.querySelectorAll('mjx-container').length,
    });
    if (!window.__stop) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}
"""

_CELL_JS = """([id, i, sel]) => {
  const p = [...window.jupyterapp.shell.widgets('main')].find(w => w.id === id);
  const c = p.content.widgets[i].node;
  return [...(c.querySelector('.jp-Cell-outputArea') || c).querySelectorAll(sel)]
"""


def math_forms(page: LabPage, i: int) -> list[tuple[str, str]]:
    """Each typeset formula of cell i's output: (display attribute, its MathML text), in order."""
    result: list[list[str]] = page.eval(
        _CELL_JS
        + """.map(m => [m.getAttribute('display') || 'false',
                     (m.querySelector('mjx-assistive-mml') || m).textContent.replace(/\\s+/g, '')]); }""",
        [page.panel_id, i, "mjx-container"],
    )
    return [(display, text) for display, text in result]


def alignments(page: LabPage, i: int) -> list[list[str]]:
    rows: list[list[str]] = page.eval(
        _CELL_JS + ".map(r => [...r.children].map(c => getComputedStyle(c).textAlign)); }",
        [page.panel_id, i, "table tr"],
    )
    return rows


def token_colours(page: LabPage, i: int) -> dict[str, str]:
    """Computed colours in the code block: the block's own, and of the token 'def' and of a comment."""
    found: dict[str, str] = page.eval(
        _CELL_JS.replace("return [", "const pre = [")
        + """[0]; if (!pre) return {};
        const out = {plain: getComputedStyle(pre).color};
        for (const s of pre.querySelectorAll('code *')) {
          const t = s.textContent.trim();
          if (t === 'def' && !out.def) out.def = getComputedStyle(s).color;
          if (t.startsWith('#') && !out.comment) out.comment = getComputedStyle(s).color;
        }
        out.spans = String(pre.querySelectorAll('code *').length);
        return out; }""",
        [page.panel_id, i, "pre code"],
    )
    return found


def set_theme(page: LabPage, theme: str) -> None:
    page.eval("(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", theme)
    page.page.wait_for_function(
        "(t) => document.body.dataset.jpThemeName === t && document.body.dataset.jpThemeLight !== undefined",
        arg=theme,
        timeout=15_000,
    )
    page.page.wait_for_timeout(500)  # the theme's stylesheet applies


def words_of(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*", text)


def side_by_side(page: LabPage, markdown_cell: int, chat_cell: int, out: Path) -> Path:
    """One image: the Markdown cell as JupyterLab renders it (left), the reply (right)."""
    from PIL import Image

    left = out.with_name(out.stem + "-markdown.png")
    right = out.with_name(out.stem + "-reply.png")
    page.cell(markdown_cell).locator(".jp-MarkdownOutput").screenshot(path=str(left))
    page.output_locator(chat_cell).locator(".jp-OutputArea-output").screenshot(path=str(right))
    a, b = Image.open(left).convert("RGB"), Image.open(right).convert("RGB")
    background = a.getpixel((a.width - 1, a.height - 1))  # the theme's
    canvas = Image.new("RGB", (a.width + b.width + 24, max(a.height, b.height)), background)
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + 24, 0))
    canvas.save(out)
    return out


def write_readme_image(page: LabPage, chat_cell: int) -> None:
    from PIL import Image

    target = ROOT / "notebooks" / "images" / "reply.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.output_locator(chat_cell).locator(".jp-OutputArea-output").screenshot(path=str(target))
    image = Image.open(target).convert("RGB")
    image.quantize(colors=128).save(target, optimize=True)  # text on flat colours: small as a palette
    assert target.stat().st_size < 200_000, target.stat().st_size


def test_reply_typesets_math_highlights_code_aligns_tables_and_never_jumps(
    server: LabServer, page: LabPage, relay: Relay, browser_artifacts_dir: Path
) -> None:
    server.write_notebook(
        "mixed.ipynb",
        [("markdown", MIXED), "%load_ext shenma_magic", "%%chat\nthe mixed reply, please"],
    )
    page.open("mixed.ipynb")  # the Markdown cell renders (and MathJax loads) as the notebook opens
    page.run_cell(1)
    page.wait_cell_idle(1)
    relay.enqueue(Scripted(chunks=stream_of(words_of(MIXED), delay=0.015)))
    page.eval(SAMPLER, [page.panel_id, 2])
    page.run_cell(2)
    page.wait_cell_idle(2, timeout=30)
    page.page.wait_for_timeout(1000)  # let the final output settle (MathJax)
    page.eval("() => { window.__stop = true; }")
    samples: list[dict[str, Any]] = page.eval("() => window.__samples")
    live = [s for s in samples if s["live"]]
    assert len(live) > 60, f"only {len(live)} frames of the live view"

    # The status bar says Busy for as long as the reply streams.
    running = [s for s in live if s["running"]]
    assert running and all(s["busy"] for s in running), [s["busy"] for s in running]

    # The live view only grows (0.5 px of sub-pixel rounding allowed), and math is typeset live.
    heights = [s["h"] for s in live]
    dips = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(heights)) if b < a - 0.5]
    assert dips == [], dips[:5]
    assert max(s["math"] for s in live) >= 4

    # Nothing moves when the final output replaces the live view: every block keeps its box (<= 2 px).
    before, after = live[-1]["boxes"], samples[-1]["boxes"]
    assert samples[-1]["live"] is False and len(after) >= 12
    moved = {
        key: (before[key], box)
        for key, box in after.items()
        if key in before and (abs(box[0] - before[key][0]) > 2 or abs(box[1] - before[key][1]) > 2)
    }
    unfinished = list(before)[-1]  # the tail: it may still grow at the end, not move
    moved.pop(unfinished, None)
    assert moved == {}, moved
    assert abs(samples[-1]["h"] - live[-1]["h"]) < 30

    # Math: each delimiter form typeset, TeX intact (braces, thin space), money left alone.
    forms = math_forms(page, 2)
    assert [d for d, _ in forms] == ["false", "false", "true", "true", "true"], forms
    assert "{1,2,3}" in forms[3][1] and forms[0][1].startswith("e")
    assert "it costs $5 and $10." in page.cell_output_text(2)
    # Tables: left by default, then as the delimiter row says.
    assert alignments(page, 2) == [["left", "right", "center"]] * 3
    # Code: coloured tokens, in the theme's colours.
    light = token_colours(page, 2)
    assert int(light["spans"]) >= 5 and light["def"] != light["plain"] and light["comment"] != light["def"]
    # The log console's status item shows no message (it shows a count when warnings arrive).
    log_item = page.page.locator(".jp-LogConsoleStatusItem")
    assert log_item.count() == 1 and "lm-mod-hidden" in (log_item.get_attribute("class") or "")

    side_by_side(page, 0, 2, browser_artifacts_dir / "reply-light.png")
    if os.environ.get("SHENMA_README_IMAGE"):
        write_readme_image(page, 2)
    try:
        set_theme(page, "JupyterLab Dark")
        dark = token_colours(page, 2)
        assert dark["def"] != light["def"] and dark["plain"] != light["plain"], (light, dark)
        side_by_side(page, 0, 2, browser_artifacts_dir / "reply-dark.png")
    finally:
        set_theme(page, "JupyterLab Light")

    # Saved and reopened without a kernel: one output, still typeset and aligned.
    nb = page.save()
    (out,) = nb["cells"][2]["outputs"]
    assert set(out["data"]) == {"text/html", "text/markdown", "text/plain"}
    server.shutdown_kernels()
    page.reopen()
    page.wait_for_selector_in_output(2, "mjx-container", timeout=20)
    page.page.wait_for_timeout(500)
    assert [d for d, _ in math_forms(page, 2)] == ["false", "false", "true", "true", "true"]
    assert alignments(page, 2) == [["left", "right", "center"]] * 3


# --------------------------------------------------------------------------- no request off loopback


class CountingServer:
    """A tiny HTTP server on ``host`` that records every request and answers 200 with an empty body."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                kind = "text/javascript" if self.path.endswith((".js", ".mjs")) else "text/plain"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = socketserver.ThreadingTCPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def hostile_reply(leak: str) -> str:
    """Every way we know for Markdown (or HTML/TeX in it) to make a page load a URL by itself."""
    host = leak.split("//", 1)[1]
    inner = f'<svg xmlns="http://www.w3.org/2000/svg"><image href="{leak}/leak?d=svg"/></svg>'
    svg = "data:image/svg+xml;base64," + base64.b64encode(inner.encode()).decode()
    return f"""Hostile images.

![inline]({leak}/leak?d=inline "title")
![ref][r1] and ![collapsed][] and ![shortcut]

[r1]: {leak}/leak?d=reference
[collapsed]: {leak}/leak?d=collapsed
[shortcut]: <{leak}/leak?d=shortcut>

![protocol relative](//{host}/leak?d=protocol-relative)
![upper](HTTP://{host.upper()}/leak?d=upper)
![entity](&#104;ttp://{host}/leak?d=entity) ![colon](http&#58;//{host}/leak?d=colon)
![escaped](http\\://{host}/leak?d=escaped) ![spaces]( {leak}/leak?d=spaces )
![svg]({svg})
[![linked image]({leak}/leak?d=linked)]({leak}/leak?d=link-target)

<{leak}/leak?d=autolink> and {leak}/leak?d=bare

<img src="{leak}/leak?d=rawimg"> <svg><image href="{leak}/leak?d=rawsvg"/></svg>
<style>@import url({leak}/leak?d=css); body {{ background: url({leak}/leak?d=css-bg) }}</style>
<link rel="stylesheet" href="{leak}/leak?d=linktag"> <video poster="{leak}/leak?d=video"></video>

Math: $\\href{{{leak}/leak?d=tex-href}}{{x}}$ and
$\\style{{background-image: url({leak}/leak?d=tex-style)}}{{y}}$ and $\\class{{x}}{{z}}$ done.

```html
<img src="{leak}/leak?d=in-code">
```

End of hostile images.
"""


def off_loopback(urls: list[str]) -> list[str]:
    return [u for u in urls if not re.match(r"(https?|wss?)://127\.0\.0\.1[:/]|(data|blob|about|file):", u)]


def test_a_hostile_reply_makes_no_request_off_loopback(
    server: LabServer, page: LabPage, relay: Relay, tmp_path: Path
) -> None:
    with CountingServer("127.0.0.2") as leak, CountingServer("127.0.0.1") as static:
        requests: list[str] = []

        def record(request: Any) -> None:
            requests.append(request.url)

        page.context.on("request", record)
        try:
            reply = hostile_reply(leak.base)
            server.write_notebook("leak.ipynb", ["%load_ext shenma_magic", "%%chat\nshow me the images"])
            page.open("leak.ipynb")
            page.run_cell(0)
            page.wait_cell_idle(0)
            relay.enqueue(Scripted(chunks=stream_of(words_of(reply), delay=0.01)))
            page.run_cell(1)
            page.wait_cell_idle(1, timeout=30)
            page.wait_for_text_in_output(1, "End of hostile images.")
            page.page.wait_for_timeout(500)
            shown = page.cell_output_text(1)
            assert "inline" in shown and "127.0.0.2" in shown  # remote images show as links: alt and host
            assert off_loopback(requests) == [] and leak.hits == [], "while shown"

            page.save()
            server.shutdown_kernels()
            page.reopen()
            page.wait_for_text_in_output(1, "End of hostile images.", timeout=20)
            page.page.wait_for_timeout(500)
            assert off_loopback(requests) == [] and leak.hits == [], "reopened"

            # nbconvert's own template scripts are pointed at a local server: only the reply is on trial.
            local = f"{static.base}/static"
            subprocess.run(
                [
                    str(Path(sys.executable).parent / "jupyter-nbconvert"),
                    "--to",
                    "html",
                    f"--HTMLExporter.require_js_url={local}/require.js",
                    f"--HTMLExporter.mathjax_url={local}/mathjax.js",
                    f"--HTMLExporter.mermaid_js_url={local}/mermaid.mjs",
                    f"--HTMLExporter.mermaid_layout_elk_js_url={local}/elk.mjs",
                    f"--HTMLExporter.jquery_url={local}/jquery.js",
                    "--output-dir",
                    str(tmp_path),
                    str(server.root_dir / "leak.ipynb"),
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            exported = tmp_path / "leak.html"
            assert "End of hostile images." in exported.read_text(encoding="utf-8")
            viewer = page.context.new_page()
            try:
                viewer.goto(exported.as_uri(), wait_until="load")
                viewer.wait_for_timeout(1500)
                assert "End of hostile images." in viewer.inner_text("body")
            finally:
                viewer.close()
            assert off_loopback(requests) == [] and leak.hits == [], "exported"
            assert any(u.startswith(static.base) for u in requests)  # the export's scripts were loaded
        finally:
            page.context.remove_listener("request", record)


def test_a_long_reply_stays_live_within_the_outputs_jupyterlab_shows(
    server: LabServer, page: LabPage, relay: Relay
) -> None:
    """JupyterLab shows 50 outputs of a cell and hides the rest behind "Show more outputs" (a live view
    there stops moving). A reply of 150 paragraphs, each finished at its own refresh, stays in sight
    while it streams: the last paragraphs are shown before the cell ends, nothing is trimmed."""
    paragraphs = [f"Paragraph {i} of a long answer.\n\n" for i in range(150)]
    server.write_notebook("long.ipynb", ["%load_ext shenma_magic", "%%chat\na long answer"])
    page.open("long.ipynb")
    page.run_cell(0)
    page.wait_cell_idle(0)
    relay.enqueue(Scripted(chunks=stream_of(paragraphs, delay=0.06)))
    page.run_cell(1)
    page.wait_for_text_in_output(1, "Paragraph 140 of a long answer.", timeout=30)
    live = page.eval(
        """([id, i]) => {
          const p = [...window.jupyterapp.shell.widgets('main')].find(w => w.id === id);
          const area = p.content.widgets[i].node.querySelector('.jp-Cell-outputArea');
          return {
            outputs: area.querySelectorAll(':scope > .jp-OutputArea-child').length,
            trimmed: area.innerText.includes('Show more outputs'),
            streaming: area.querySelector('.shenma-live-status') !== null,
          };
        }""",
        [page.panel_id, 1],
    )
    assert live["streaming"], "paragraph 140 was not in sight while the reply streamed (trimmed outputs?)"
    assert not live["trimmed"] and live["outputs"] <= 50, live
    page.wait_cell_idle(1, timeout=30)
    page.wait_for_text_in_output(1, "Paragraph 149 of a long answer.")
    assert "Show more outputs" not in page.cell_output_text(1)
