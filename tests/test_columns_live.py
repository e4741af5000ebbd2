"""The live comparison view (shenma_magic._livecolumns), its messages replayed into a model of a
frontend's output area (the display publisher of tests/test_live.py) or recorded by a fake outlet.

Against them: the comparison leaves exactly one output (after what the cell showed before), no widget;
the final output holds the very pieces the live columns showed, column by column (so nothing moves
when it replaces them); a finished block is sealed into one output once and that output is never sent
again; every message and the traffic as a whole stay bounded whatever the shape of the answers; one
column's error stays in that column.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shenma_magic import _layout as layout
from shenma_magic._compare import LaneResult
from shenma_magic._display import Extras, final_parts, line_bundle
from shenma_magic._live import CELL_OUTPUTS
from shenma_magic._livecolumns import OUTPUT_BUDGET, ColumnsLiveView, columns_bundle
from shenma_magic._models import NoticeDelta, ReasoningDelta, Reply, TextDelta
from tests import test_live
from tests.test_live import Frontend, pieces_of, shapes

frontend = test_live.frontend  # the fixture: a display publisher that keeps one cell's outputs
MODELS = ["a", "b", "c"]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class Outlet:
    """Records what a view sends through an outlet, by display id, in order."""

    def __init__(self) -> None:
        self.shown: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[str, dict[str, Any]]] = []  # (display id, bundle): displays and updates

    def display(self, bundle: dict[str, Any]) -> str:
        display_id = f"id{len(self.shown)}"
        self.shown[display_id] = bundle
        self.log.append((display_id, bundle))
        return display_id

    def update(self, display_id: str, bundle: dict[str, Any]) -> None:
        assert display_id in self.shown
        self.shown[display_id] = bundle
        self.log.append((display_id, bundle))


def prose(model: str, paragraphs: int) -> str:
    return "".join(f"Paragraph {n} of {model}: " + "some words " * 12 + "\n\n" for n in range(paragraphs))


def stream(view: ColumnsLiveView, texts: list[str], size: int = 40) -> int:
    """Every column fed ``size`` characters at a time, each refreshed after each piece; refreshes made."""
    pieces = [pieces_of(text, size) for text in texts]
    refreshes = 0
    for step in range(max(len(p) for p in pieces)):
        for index, column in enumerate(pieces):
            if step < len(column):
                view.on_delta(index, TextDelta(column[step]))
                view.refresh(index, f"streaming {step}")
                refreshes += 1
    return refreshes


def end(view: ColumnsLiveView, replies: list[Reply], statuses: list[str]) -> list[LaneResult]:
    for index, (reply, status) in enumerate(zip(replies, statuses, strict=True)):
        view.finish(index, reply, status)
    results = [LaneResult(m, r, s) for m, r, s in zip(MODELS, replies, statuses, strict=True)]
    view.close(results)
    return results


FRAME = '<div class="shenma-reply" style="margin: 0; padding: 0;">'
MARKS = re.compile(r"shenma-b-\d+-\d+ |<style>[^<]*</style>")


def live_pieces(html: str) -> str:
    """The pieces one live output of a column holds, without the marks that only the live view needs."""
    if FRAME not in html:
        return ""  # an unused output
    inner = html[html.index(FRAME) + len(FRAME) :]
    assert inner.endswith("</div></div>"), inner[-80:]
    return MARKS.sub("", inner[: -len("</div></div>")])


def column_outputs(outputs: list[dict[str, Any]], place: int) -> list[str]:
    """The HTML of the live outputs of the column at ``place`` in its row, in order."""
    return [o["text/html"] for o in outputs if f"shenma-slot shenma-slot-{place}" in o.get("text/html", "")]


def test_the_comparison_leaves_one_output_after_what_the_cell_showed_before(frontend: Frontend) -> None:
    extras = Extras(rich=True)
    extras.line("sent 1 image")
    view = ColumnsLiveView(MODELS, outputs=extras)
    # Outputs made at once, within what JupyterLab shows of a cell (50; the rest behind a click).
    assert 1 + len(MODELS) < len(frontend.outputs) <= 1 + OUTPUT_BUDGET
    texts = [prose(m, 25) for m in MODELS]
    stream(view, texts)
    replies = [Reply(t, finish_reason="stop") for t in texts]
    results = end(view, replies, [f"{m} done" for m in MODELS])
    assert [o.data for o in frontend.outputs] == [
        line_bundle("sent 1 image"),
        columns_bundle([(r.model, r.reply, r.status) for r in results]),
    ]
    assert set(frontend.outputs[1].data) == {"text/html", "text/markdown", "text/plain"}
    assert all(WIDGET_MIME not in data for _, _, data in frontend.sent)  # no widget, no comm


@pytest.mark.parametrize("reasoning", [False, True])
def test_each_column_in_its_final_form_holds_the_pieces_of_the_final_output(
    frontend: Frontend, reasoning: bool
) -> None:
    view = ColumnsLiveView(MODELS)
    texts = [prose(m, n) for m, n in zip(MODELS, (3, 40, 90), strict=True)]
    if reasoning:
        view.on_delta(1, ReasoningDelta("Thinking it over. " * 40))
    stream(view, texts, size=23)
    replies = [
        Reply(t, reasoning="Thinking it over. " * 40 if reasoning and i == 1 else "")
        for i, t in enumerate(texts)
    ]
    statuses = [f"{m} · done" for m in MODELS]
    for index, (reply, status) in enumerate(zip(replies, statuses, strict=True)):
        view.finish(index, reply, status)
    # Just before the final output replaces them: each column's outputs, one after the other, hold
    # exactly the pieces the final output holds for it, so each piece takes the same room.
    shown = [o.data for o in frontend.outputs]
    for place, (reply, status) in enumerate(zip(replies, statuses, strict=True)):
        outputs = column_outputs(shown, place)
        assert outputs[0].count(layout.column_head(MODELS[place])) == 1
        parts = final_parts(reply, status)
        assert "".join(live_pieces(html) for html in outputs) == "".join(
            parts.head + parts.answer + parts.after
        )
    assert len(column_outputs(shown, 2)) > 5  # the long column used several outputs


def test_a_sealed_output_is_never_sent_again_and_every_block_is_in_one_output() -> None:
    outlet = Outlet()
    view = ColumnsLiveView(MODELS, outlet=outlet, waiting="waiting for #3…")
    assert all(set(bundle) == {"text/html", "text/plain"} for bundle in outlet.shown.values())
    assert sum("waiting for #3…" in b["text/html"] for b in outlet.shown.values()) == len(MODELS)
    texts = [prose(m, 120) for m in MODELS]
    stream(view, texts)
    ids = list(outlet.shown)
    # A column's outputs are used in order; once a later one than the next has been written, an output
    # is sealed: no message reaches it again.
    for place in range(len(MODELS)):
        mine = [i for i in ids if f"shenma-slot-{place}" in outlet.shown[i]["text/html"]]
        updates = [mine.index(i) for i, _ in outlet.log[len(ids) :] if i in mine]
        for slot in set(updates):
            later = [n for n, s in enumerate(updates) if s >= slot + 2]
            if later:
                assert slot not in updates[later[0] :], (place, slot)
        assert max(updates) > 4  # it went through several outputs
    # Every finished paragraph is in exactly one output of its column (the unfinished one in none
    # or in the tail): nothing shows twice, nothing is missing.
    html = [MARKS.sub("", b["text/html"]) for b in outlet.shown.values()]
    for model in MODELS:
        for n in range(119):
            assert sum(h.count(f"Paragraph {n} of {model}:") for h in html) == 1, (model, n)


@pytest.mark.parametrize("shape", ["prose", "table", "code", "one-line"])
def test_every_message_and_the_traffic_are_bounded_whatever_the_shape(frontend: Frontend, shape: str) -> None:
    seal_max, tail_bytes = 24_000, 12_000
    text = shapes()[shape]
    view = ColumnsLiveView(MODELS, outputs=Extras(rich=True), tail_limit=2000, seal_max=seal_max)
    start = len(frontend.sent)
    texts = [text, prose("b", 30), text[: len(text) // 2]]
    refreshes = stream(view, texts, size=max(1, len(text) // 150))  # ~150 refreshes of each column
    live = frontend.sent[start:]
    end(view, [Reply(t, finish_reason="stop") for t in texts], ["done"] * 3)
    final = frontend.outputs[-1].data
    rendered = len(json.dumps(final).encode())
    biggest = max(len(json.dumps(b).encode()) for b in layout.answer_blocks(text))
    # A message holds at most a waiting slot (seal_max of blocks, plus those that finished at once) or a
    # tail (the unfinished block within tail_bytes, or a note), in a column's box.
    for kind, size, data in live:
        assert size < seal_max + tail_bytes + biggest + 8_000, (kind, size, data["text/plain"][:80])
    # At most two messages a refresh; the traffic grows with the answers and the refreshes, bounded.
    assert len(live) <= 2 * refreshes
    assert sum(size for _, size, _ in live) < 30 * rendered + refreshes * 8_000


def test_a_column_out_of_outputs_shows_its_newest_blocks_and_everything_at_the_end(
    frontend: Frontend,
) -> None:
    view = ColumnsLiveView(MODELS, outputs=Extras(rich=True), budget=1 + 3 * 3, seal_max=4_000)
    texts = [prose(m, 200) for m in MODELS]
    stream(view, texts)
    html = [o.data.get("text/html", "") for o in frontend.outputs]
    assert len(html) == 1 + 3 * 3
    assert any(re.search(r"… [\d,]+ more blocks, shown when this answer is done", h) for h in html)
    assert max(size for _, size, _ in frontend.sent) < 2 * 4_000 + 12_000 + 4_000
    end(view, [Reply(t, finish_reason="stop") for t in texts], ["done"] * 3)
    (final,) = frontend.outputs
    assert all(f"Paragraph 199 of {m}:" in final.data["text/html"] for m in MODELS)
    assert final.data["text/html"].count("Paragraph 100 of a:") == 1


def test_reasoning_notice_and_an_error_stay_in_their_columns(frontend: Frontend) -> None:
    view = ColumnsLiveView(MODELS)
    view.on_delta(0, ReasoningDelta("step one. " * 100))
    view.on_delta(1, NoticeDelta("skipped a malformed event"))
    view.on_delta(1, TextDelta("Half an answer"))
    for index in range(3):
        view.refresh(index, f"{MODELS[index]} · streaming")
    shown = [o.data for o in frontend.outputs]
    first = column_outputs(shown, 0)
    assert "reasoning (1,000 chars)" in first[0] and len(first[0]) < 3000  # one folded line
    assert any("skipped a malformed event" in h for h in column_outputs(shown, 1))
    assert not any("skipped a malformed event" in h for p in (0, 2) for h in column_outputs(shown, p))
    replies = [
        Reply("fine", reasoning="step one. " * 100),  # text the view was not fed: rendered again
        Reply("Half an answer", error="the connection broke"),
        Reply("", error="503 upstream busy"),  # nothing came
    ]
    for index, reply in enumerate(replies):
        view.finish(index, reply, f"{MODELS[index]} · ended")
    shown = [o.data for o in frontend.outputs]
    broken = [p for p in range(3) if any("the connection broke" in h for h in column_outputs(shown, p))]
    assert broken == [1]
    for place, reply in enumerate(replies):  # each column in its final form, also those never fed text
        parts = final_parts(reply, f"{MODELS[place]} · ended")
        pieces = "".join(live_pieces(html) for html in column_outputs(shown, place))
        assert pieces == "".join(parts.head + parts.answer + parts.after)
    view.close([LaneResult(m, r, f"{m} · ended") for m, r in zip(MODELS, replies, strict=True)])
    (final,) = [o.data for o in frontend.outputs if "text/markdown" in o.data]  # in the first output
    cells = final["text/html"].split('<div class="shenma-column"')[1:]
    assert [("the connection broke" in cell) for cell in cells] == [False, True, False]
    assert [("503 upstream busy" in cell) for cell in cells] == [False, False, True]


def test_more_than_four_models_wrap_into_even_rows(frontend: Frontend) -> None:
    models = [f"m{i}" for i in range(5)]
    view = ColumnsLiveView(models)
    html = [o.data["text/html"] for o in frontend.outputs]
    assert len(html) <= 1 + OUTPUT_BUDGET
    assert "column-count: 3" in html[0] and "shenma-live-columns-3" in html[0]
    assert sum('class="shenma-row-break"' in h for h in html) == 1  # a gap between the two rows
    firsts = [re.search(r"shenma-slot-(\d) shenma-slot-first", h) for h in html]
    # Each model's first output, then one empty column filling the second row's third place.
    assert [int(m.group(1)) for m in firsts if m] == [0, 1, 2, 0, 1, 2]
    for index, model in enumerate(models):
        view.finish(index, Reply(f"answer of {model}"), f"{model} · done")
    view.close([LaneResult(m, Reply(f"answer of {m}"), f"{m} · done") for m in models])
    (final,) = [o.data["text/html"] for o in frontend.outputs if "text/markdown" in o.data]
    assert "grid-template-columns: repeat(3, minmax(0, 1fr))" in final and final.count("shenma-column") == 5


def test_an_answer_rendered_whole_is_redrawn_in_its_first_output(frontend: Frontend) -> None:
    # A link reference definition ties the blocks together: the answer is rendered whole at the end.
    text = prose("a", 30) + "See [the docs][d].\n\n[d]: https://example.com/docs\n"
    view = ColumnsLiveView(MODELS)
    stream(view, [text, "b", "c"])
    replies = [Reply(text), Reply("b"), Reply("c")]
    view.finish(0, replies[0], "a · done")
    outputs = column_outputs([o.data for o in frontend.outputs], 0)
    assert len([h for h in outputs if FRAME in h]) == 1  # the others are emptied
    parts = final_parts(replies[0], "a · done")
    assert live_pieces(outputs[0]) == "".join(parts.head + parts.answer + parts.after)


def test_the_cells_earlier_outputs_count_against_what_a_frontend_shows(frontend: Frontend) -> None:
    """Image thumbnails shown before the comparison are outputs too: with 20 of them, the comparison's
    outputs still fit the 50 JupyterLab shows of a cell."""
    extras = Extras(rich=True)
    for i in range(20):
        extras.show({"text/plain": f"image {i}", "text/html": f"<p>image {i}</p>"})
    view = ColumnsLiveView(MODELS, outputs=extras)
    stream(view, [prose(m, 60) for m in MODELS])
    assert len(frontend.outputs) <= CELL_OUTPUTS
