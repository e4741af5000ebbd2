"""The live view's messages (shenma_magic._live), replayed into a model of a frontend's output area.

The model keeps what JupyterLab, Notebook 7 and nbclient keep for one cell: outputs in order, each with
its display id; ``update_display_data`` replaces the outputs with that id; ``clear_output(wait=True)``
clears when the next output arrives. Against it: the reply leaves exactly one output (after what the
cell showed before), the final output holds the very pieces the live view showed (so nothing moves
when it replaces them), each finished block is sent once, and the bytes of a refresh stay bounded
whatever the shape of the reply.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

from shenma_magic import _layout as layout
from shenma_magic._blockcut import BlockCutter, split_blocks
from shenma_magic._display import Extras, final_bundle
from shenma_magic._live import CELL_OUTPUTS, OUTPUT_BUDGET, LiveView
from shenma_magic._models import NoticeDelta, ReasoningDelta, Reply, TextDelta
from shenma_magic._render import render_html, safe_markdown
from tests.test_blockcut import markdown_texts


@dataclass
class Output:
    data: dict[str, Any]
    display_id: str | None


@dataclass
class Frontend(DisplayPublisher):
    """A display publisher that applies every message to a model of one cell's output area."""

    outputs: list[Output] = field(default_factory=list)
    clear_next: bool = False
    sent: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)  # (type, bytes, data)

    def __post_init__(self) -> None:
        DisplayPublisher.__init__(self)

    def publish(
        self,
        data: dict[str, Any],
        metadata: Any = None,
        source: Any = None,  # deprecated by IPython and never passed; kept to match its signature
        *,
        transient: Any = None,
        update: bool = False,
        **kw: Any,
    ) -> None:
        display_id = (transient or {}).get("display_id")
        self.sent.append(
            ("update_display_data" if update else "display_data", len(json.dumps(data).encode()), data)
        )
        if update:
            for out in self.outputs:
                if out.display_id == display_id:
                    out.data = data
            return
        if self.clear_next:
            self.outputs, self.clear_next = [], False
        self.outputs.append(Output(data, display_id))

    def clear_output(self, wait: bool = False) -> None:
        self.sent.append(("clear_output", 0, {}))
        if wait:
            self.clear_next = True
        else:
            self.outputs = []

    def html(self) -> str:
        return "".join(str(o.data.get("text/html", "")) for o in self.outputs)


@contextlib.contextmanager
def publishing() -> Iterator[Frontend]:
    shell = InteractiveShell.instance()
    saved = shell.display_pub
    shell.display_pub = fake = Frontend()
    try:
        yield fake
    finally:
        shell.display_pub = saved


@pytest.fixture
def frontend() -> Iterator[Frontend]:
    with publishing() as fake:
        yield fake


def stream(view: LiveView, pieces: list[str], every: int = 1, status: str = "streaming…") -> None:
    for i, piece in enumerate(pieces):
        view.on_delta(TextDelta(piece))
        if i % every == every - 1:
            view.refresh(status)


def pieces_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def shapes() -> dict[str, str]:
    prose = "".join(
        f"## Part {i}\n\nParagraph {i} has **bold** words, `code`, math $x_{i}^2$ and more text.\n\n"
        f"- point {i}a\n- point {i}b\n\n"
        for i in range(60)
    )
    table = "| id | name |\n| ---: | :--- |\n" + "".join(f"| {i} | row{i} |\n" for i in range(1500))
    code = "```python\n" + "".join(f"x{i} = {i}  # <{i}> & more\n" for i in range(1500)) + "```\n"
    line = " ".join(f"w{i}" for i in range(30_000))
    return {"prose": prose, "table": table, "code": code, "one-line": line}


TAG = re.compile(r"<[^>]+>")


def words(html: str) -> set[str]:
    return set(re.findall(r"\b(?:Paragraph|row|w)\d+\b", TAG.sub(" ", html)))


def test_the_reply_leaves_one_output_after_what_the_cell_showed_before(frontend: Frontend) -> None:
    extras = Extras(rich=True)
    extras.line("sent 1 image")
    text = shapes()["prose"]
    view = LiveView(outputs=extras)
    stream(view, pieces_of(text, 7), every=5)
    assert len(frontend.outputs) > 5  # the live view: several outputs while streaming
    reply = Reply(text, finish_reason="stop")
    view.finish(reply, "done")
    assert [o.data for o in frontend.outputs] == [
        {"text/plain": "sent 1 image", "text/html": frontend.outputs[0].data["text/html"]},
        final_bundle(reply, "done"),
    ]
    # A second reply in the same cell (a tool round) keeps the first one's output too.
    second = LiveView(outputs=extras)
    stream(second, ["Second ", "answer."])
    second.finish(Reply("Second answer.", finish_reason="stop"), "done 2")
    assert len(frontend.outputs) == 3
    assert frontend.outputs[1].data == final_bundle(reply, "done")
    assert "Second answer." in frontend.outputs[2].data["text/plain"]


FRAME = '<div class="shenma-reply" style="margin: 0; padding: 0;">'


def inner(frame: str) -> str:
    assert frame.startswith(FRAME) and frame.endswith("</div>"), frame[:80]
    return frame[len(FRAME) : -len("</div>")]


MARKS = re.compile(r"<style>[^<]*</style>|shenma-b-\d+-\d+ ")


def unmarked(html: str) -> str:
    """``html`` without what only the live view needs: the waiting output's rules (a <style> takes no
    room) and its blocks' marks (classes no rule gives a style)."""
    return MARKS.sub("", html)


@pytest.mark.parametrize(
    ("parts", "budget"),
    [
        (60, 1000),  # outputs to spare: each block sealed at the refresh that finished it
        (25, OUTPUT_BUDGET),  # past half the budget: a waiting output gathers blocks (marked, with rules)
    ],
)
def test_the_final_output_is_laid_out_as_the_live_view_showed_it(
    frontend: Frontend, parts: int, budget: int
) -> None:
    text = shapes()["prose"]
    text = text[: text.index(f"## Part {parts}")] if parts < 60 else text
    view = LiveView(outputs=Extras(rich=True), output_budget=budget, cell_outputs=10_000)
    view.on_delta(ReasoningDelta("Thinking about the answer."))
    stream(view, pieces_of(text, 11), every=3)
    # The outputs holding finished blocks, in order, as the frontend shows them just before the end.
    sealed = [o.data["text/html"] for o in frontend.outputs if "shenma-block" in o.data["text/html"]]
    # The second case does reach the waiting output's way (marked blocks), and not the end of the outputs.
    assert any("shenma-b-" in html for html in sealed) == (budget == OUTPUT_BUDGET)
    assert "not shown live" not in frontend.html()
    sealed = [unmarked(inner(html)) for html in sealed if "shenma-live-status" not in html]
    assert len(sealed) > 10
    view.finish(Reply(text, reasoning="Thinking about the answer.", finish_reason="stop"), "done")
    final = inner(frontend.outputs[-1].data["text/html"])
    # The very same pieces, one after the other, right after the reasoning line: the same pieces in the
    # same frame take the same room, so nothing the live view showed moves when the final output comes.
    reasoning_end = final.index("</details></div>") + len("</details></div>")
    assert final[reasoning_end:].startswith("".join(sealed))
    assert final.count('class="shenma-reasoning"') == 1


@pytest.mark.parametrize("shape", ["prose", "table", "code", "one-line"])
@pytest.mark.parametrize("delta", [1, 9])
def test_traffic_is_linear_whatever_the_shape(frontend: Frontend, shape: str, delta: int) -> None:
    text = shapes()[shape]
    view = LiveView(outputs=Extras(rich=True), tail_limit=2000)
    pieces = pieces_of(text, delta)
    every = max(1, len(pieces) // 150)  # ~150 refreshes, as a reply of a few seconds gets
    stream(view, pieces, every=every)
    live = [(kind, size, data) for kind, size, data in frontend.sent]
    live_bytes = sum(size for _, size, _ in live)
    view.finish(Reply(text, finish_reason="stop"), "done")
    final_bytes = sum(size for _, size, _ in frontend.sent[len(live) :])
    rendered = len(frontend.outputs[-1].data["text/html"].encode())
    # A refresh re-sends the tail only, bounded: ~2,000 characters of Markdown rendered, plus the status.
    for kind, size, data in live:
        if kind == "update_display_data" and "shenma-live-status" in data["text/html"]:
            assert size < 40_000, (kind, size)
    # Each finished block goes out once: the live traffic is the answer once plus bounded tails.
    assert live_bytes < 2 * rendered + 150 * 40_000
    assert final_bytes < 2 * (rendered + 2 * len(json.dumps(text)))


def sent_counts(frontend: Frontend) -> dict[str, int]:
    """How many times each paragraph went out in an output that holds finished blocks only."""
    counts: dict[str, int] = {}
    for kind, _, data in frontend.sent:
        if kind == "update_display_data" and "shenma-live-status" not in data["text/html"]:
            for word in re.findall(r"Paragraph \d+", TAG.sub("", data["text/html"])):
                counts[word] = counts.get(word, 0) + 1
    return counts


def test_every_finished_block_is_sent_once_while_outputs_last(frontend: Frontend) -> None:
    text = shapes()["prose"]
    view = LiveView(outputs=Extras(rich=True), output_budget=1000, cell_outputs=10_000)
    stream(view, pieces_of(text, 5), every=2)
    counts = sent_counts(frontend)
    assert counts and set(counts.values()) == {1}
    assert len(counts) >= 55  # all but the last paragraphs are finished while streaming


def test_a_long_reply_keeps_within_the_outputs_a_frontend_shows(frontend: Frontend) -> None:
    """JupyterLab and Notebook 7 show 50 outputs of a cell: a reply of hundreds of paragraphs, each
    finished at its own refresh, never has more than OUTPUT_BUDGET, and every finished paragraph stays
    in sight (or is counted on the line that says how many the final output will show)."""
    text = "".join(f"Paragraph {i} says something.\n\n" for i in range(600))
    view = LiveView(outputs=Extras(rich=True))
    most = 0
    noted = False  # the outputs ran out and the line saying how many are not shown came
    fed = ""
    for piece in pieces_of(text, 31):
        view.on_delta(TextDelta(piece))
        fed += piece
        view.refresh("streaming…")
        most = max(most, len(frontend.outputs))
        finished = fed.count("\n\n") - 1  # a paragraph is finished once the next one has begun
        html = TAG.sub(" ", frontend.html())
        shown = {int(n) for n in re.findall(r"Paragraph (\d+) says", html)}
        more = re.search(r"… (\d+) earlier blocks? not shown live", html)
        missing = [n for n in range(finished) if n not in shown]
        assert len(missing) <= (int(more.group(1)) if more else 0), (len(fed), missing[:5])
        noted = noted or more is not None
    assert most <= OUTPUT_BUDGET and noted
    counts = sent_counts(frontend)
    assert len(counts) >= 590 and max(counts.values()) <= 40  # each re-sent a bounded number of times
    view.finish(Reply(text, finish_reason="stop"), "done")
    assert len(frontend.outputs) == 1


@pytest.mark.parametrize("paragraphs", [300, 1200])
def test_traffic_per_character_does_not_grow_with_the_length(frontend: Frontend, paragraphs: int) -> None:
    ratios = []
    for count in (paragraphs, 2 * paragraphs):
        frontend.sent.clear()
        text = "".join(f"Paragraph {i} " + "word " * 30 + "\n\n" for i in range(count))
        view = LiveView(outputs=Extras(rich=True))
        stream(view, pieces_of(text, 40))
        ratios.append(sum(size for _, size, _ in frontend.sent) / len(text))
        view.finish(Reply(text, finish_reason="stop"), "done")
    assert ratios[1] <= 1.2 * ratios[0], ratios


def test_what_is_shown_only_grows(frontend: Frontend) -> None:
    text = shapes()["table"][:3000] + "\n" + shapes()["prose"]
    view = LiveView(outputs=Extras(rich=True), tail_limit=5000, tail_bytes=10**9)
    seen: set[str] = set()
    for i, piece in enumerate(pieces_of(text, 13)):
        view.on_delta(TextDelta(piece))
        if i % 4 == 3:
            view.refresh("streaming…")
            now = words(frontend.html())
            assert seen <= now, sorted(seen - now)[:5]
            seen = now
    view.finish(Reply(text, finish_reason="stop"), "done")
    assert seen <= words(frontend.html())


def test_without_an_output_log_the_live_outputs_are_emptied(frontend: Frontend) -> None:
    view = LiveView()
    stream(view, pieces_of(shapes()["prose"][:2000], 9), every=3)
    reply = Reply(shapes()["prose"][:2000], finish_reason="stop")
    view.finish(reply, "done")
    shown = [o.data for o in frontend.outputs if o.data != {"text/plain": ""}]
    assert shown == [final_bundle(reply, "done")]


def test_notice_reasoning_and_waiting_line(frontend: Frontend) -> None:
    view = LiveView(outputs=Extras(rich=True), waiting="waiting…")
    assert "waiting…" in frontend.html()
    view.on_delta(ReasoningDelta("step one. " * 100))
    view.on_delta(NoticeDelta("skipped a malformed event"))
    view.refresh("streaming…")
    html = frontend.html()
    assert "reasoning (1,000 chars)" in html and "skipped a malformed event" in html
    assert len(html) < 3000  # the reasoning is one folded line while streaming, not the whole text


def test_what_a_tool_shows_survives_the_next_reply(
    frontend: Frontend, capsys: pytest.CaptureFixture[str]
) -> None:
    extras = Extras(rich=True)
    first = LiveView(outputs=extras)
    stream(first, ["Calling ", "a tool."])
    first.finish(Reply("Calling a tool.", finish_reason="tool_calls"), "round 1")
    with extras.capturing():
        print("the tool printed this")
        from IPython.display import display

        display({"text/plain": "a chart", "text/html": "<b>a chart</b>"}, raw=True)
    extras.line("ran: tool() → 42")
    second = LiveView(outputs=extras)
    stream(second, pieces_of(shapes()["prose"][:3000], 13), every=2)
    second.finish(Reply(shapes()["prose"][:3000], finish_reason="stop"), "round 2")
    shown = [o.data.get("text/plain", "") for o in frontend.outputs]
    assert shown[0].startswith("Calling a tool.")
    assert shown[1:3] == ["a chart", "ran: tool() → 42"], shown
    assert len(shown) == 4 and shown[3].startswith("## Part 0")
    # The print is a stream (stdout here, a stream output in a kernel): written again after the clear.
    assert capsys.readouterr().out.count("the tool printed this\n") == 2


def _bundle_as_before(reply: Reply, status: str) -> dict[str, str]:
    """The final bundle as it was made before one parse served both copies: every block rendered on its
    own with render_html (or the whole answer, with link definitions), the Markdown copy from a second
    parse of the whole answer."""
    cutter = BlockCutter()
    sources = cutter.feed(reply.text) + cutter.close()
    html = [render_html(reply.text)] if cutter.references else [render_html(s) for s in sources]
    blocks = [layout.block(h) for h in html]
    return final_bundle(reply, status, blocks=blocks, markdown=safe_markdown(reply.text))


FINAL_TEXTS = [
    *shapes().values(),
    "See [the docs][d] and [^1].\n\n[d]: https://example.com/docs\n\n[^1]: a footnote\n",
    "Text <script>alert(1)</script> and ![x](http://evil.example/x.png)\n\n$$\na < b\n$$\n",
    "1. one\n\n2. two\n\n   more\n\n- other list\n\n> quote\n> - item\n\n```\ncode\n```",
]


@pytest.mark.parametrize("text", FINAL_TEXTS)
@pytest.mark.parametrize("size", [1, 13])
def test_one_parse_per_block_leaves_the_same_final_output(frontend: Frontend, text: str, size: int) -> None:
    view = LiveView(outputs=Extras(rich=True))
    stream(view, pieces_of(text, size), every=7)
    reply = Reply(text, finish_reason="stop")
    view.finish(reply, "done")
    assert frontend.outputs[-1].data == _bundle_as_before(reply, "done") == final_bundle(reply, "done")


@settings(max_examples=150, deadline=None)
@given(markdown_texts, st.integers(min_value=1, max_value=9), st.integers(min_value=1, max_value=5))
def test_one_parse_per_block_leaves_the_same_final_output_for_any_markdown(
    text: str, size: int, every: int
) -> None:
    # Where the cutter's blocks do not render alone as in the whole (a bug test_blockcut looks for), the
    # Markdown copy follows the blocks shown now, not a parse of the whole: not the same bundle then.
    blocks = split_blocks(text)
    assume("".join(render_html(b) for b in blocks) == render_html(text))
    with publishing() as fake:
        view = LiveView(outputs=Extras(rich=True))
        stream(view, pieces_of(text, size), every=every)
        reply = Reply(text, finish_reason="stop")
        view.finish(reply, "done")
        assert fake.outputs[-1].data == _bundle_as_before(reply, "done")


def test_the_end_of_a_reply_parses_its_last_block_once(
    frontend: Frontend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A huge table is one block, rendered only at the end: parsed once there for both the HTML and the
    Markdown copy (twice before: the Markdown copy re-parsed the whole answer)."""
    from shenma_magic import _markdown

    md = _markdown._markdown()
    parses: list[int] = []
    original = md.parse

    def counting(src: str, env: Any = None) -> Any:
        parses.append(len(src))
        return original(src, env)

    monkeypatch.setattr(md, "parse", counting)
    text = shapes()["table"]
    view = LiveView(outputs=Extras(rich=True))
    stream(view, pieces_of(text, 50), every=10)
    parses.clear()
    view.finish(Reply(text, finish_reason="stop"), "done")
    assert parses == [len(text)]


def test_a_refresh_says_how_many_messages_it_sent(frontend: Frontend) -> None:
    """The turn paces refreshes by the messages they send (two when blocks finished): the count each
    refresh returns is what went to the frontend."""
    view = LiveView(outputs=Extras(rich=True))
    view.on_delta(ReasoningDelta("thinking"))
    counts = []
    for piece in pieces_of(shapes()["prose"][:3000], 40):
        view.on_delta(TextDelta(piece))
        before = len(frontend.sent)
        counts.append(view.refresh("streaming…"))
        assert counts[-1] == len(frontend.sent) - before
    assert counts[0] == 3 and 2 in counts  # the reasoning line, then blocks sealed (a new tail, the old)


def test_the_cells_earlier_outputs_count_against_what_a_frontend_shows(frontend: Frontend) -> None:
    """Thumbnails, tool lines and an earlier round's answer are outputs too: with 15 of them shown first,
    and then two long replies in the same cell, the cell never holds more than the 50 outputs JupyterLab
    shows (past that the live tail would be hidden behind "Show more outputs")."""
    extras = Extras(rich=True)
    for i in range(15):
        extras.show({"text/plain": f"thumbnail {i}", "text/html": f"<p>thumbnail {i}</p>"})
    text = "".join(f"Paragraph {i} says something.\n\n" for i in range(600))
    most = 0
    for _ in range(2):  # a tool round: the second reply comes below the first one's final output
        view = LiveView(outputs=extras)
        for piece in pieces_of(text, 31):
            view.on_delta(TextDelta(piece))
            view.refresh("streaming…")
            most = max(most, len(frontend.outputs))
        view.finish(Reply(text, finish_reason="stop"), "done")
    assert most <= CELL_OUTPUTS
    assert len(frontend.outputs) == 17  # the 15, then each reply's one output


def test_a_burst_of_finished_blocks_hides_the_preview_it_replaces(frontend: Frontend) -> None:
    """A buffering proxy delivers many paragraphs at once: the waiting output that takes them carries the
    rule hiding the tail's preview of the first of them (the block the preview showed)."""
    view = LiveView(outputs=Extras(rich=True), output_budget=8)  # outputs run short at once
    for i in range(6):
        view.on_delta(TextDelta(f"Paragraph {i}.\n\n"))
        view.refresh("streaming…")
    tail = frontend.outputs[-1].data["text/html"]
    marked = re.search(r'class="shenma-p-(\d+)-(\d+)"', tail)
    assert marked, tail[:200]
    view.on_delta(TextDelta("".join(f"Burst {i}.\n\n" for i in range(20)) + "Then more"))
    view.refresh("streaming…")
    waiting = [d["text/html"] for kind, _, d in frontend.sent if kind == "update_display_data"][-2]
    assert f".shenma-p-{marked.group(1)}-{marked.group(2)} " in waiting
