"""``%%chat -m a,b,c`` in a real JupyterLab in headless Chromium, against the local relay.

What a person sees: three columns side by side, each under its model's name, that fill while the cell
runs (plain display outputs, never a widget: the status bar says Busy throughout and the log console
gets no "No such comm" warning), then the same columns as one normal rendered output at the same
places: no column and no block moves more than 2 px when the answers end. Screenshots go to
tests/artifacts/browser/compare-*.png.

The relay, JupyterLab and the browser tab are the suite's (tests/browser/conftest.py).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import LabPage, LabServer
from tests.relay import Relay, Scripted, stream_of

pytestmark = pytest.mark.browser

MODELS = {"alpha": 3.0, "beta": 4.5, "gamma": 6.0}  # seconds each answer takes
WORDS = 180  # each answer: enough paragraphs for a column to seal some and move its tail down
WIDGET_SELECTOR = ".jupyter-widgets, .widget-html, .widget-output"

# Per rAF frame, in cell i's output area: each column's box (the box around its model's name: the
# first live output of the column, or the final output's column), each visible block's box keyed by its
# tag and first words (and the keys seen twice), how many status lines each column shows, whether the
# status bar says Busy, whether the live columns are up, whether the cell runs.
SAMPLER = r"""
([id, i]) => {
  const p = [...window.jupyterapp.shell.widgets('main')].find(w => w.id === id);
  const cell = p.content.widgets[i].node;
  const area = cell.querySelector('.jp-Cell-outputArea');
  window.__samples = []; window.__stop = false;
  const box = (el, base) => {
    const r = el.getBoundingClientRect();
    return [r.left - base.left, r.top - base.top, r.width, r.height];
  };
  const tick = () => {
    const base = area.getBoundingClientRect();
    const columns = {}, blocks = {}, twice = [], statuses = {};
    for (const m of area.querySelectorAll('.shenma-model')) {
      columns[m.textContent] = box(m.parentElement, base);
    }
    for (const b of area.querySelectorAll('h2, p')) {
      if (b.offsetParent === null) continue;  // hidden
      const key = b.tagName + ' ' + b.textContent.trim().slice(0, 40);
      if (key in blocks) twice.push(key);
      blocks[key] = box(b, base);
    }
    for (const st of area.querySelectorAll('.shenma-status')) {
      if (st.offsetParent === null) continue;
      const slot = st.closest('.shenma-slot');  // live: the column's place in its row
      const place = slot ? slot.className.match(/shenma-slot-(\d)/)[1] : 'final';
      statuses[place] = (statuses[place] || 0) + 1;
    }
    window.__samples.push({
      columns, blocks, twice, statuses,
      filled: area.querySelectorAll('.shenma-slot .shenma-reply').length,  // live outputs in use
      busy: document.querySelector('#jp-main-statusbar').innerText.includes('Busy'),
      live: area.querySelector('[class^="shenma-live-columns"]') !== null,
      running: cell.querySelector('.jp-InputArea-prompt').innerText.includes('*'),
      text: area.innerText,
    });
    if (!window.__stop) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}
"""


def answer(model: str, words: int = WORDS) -> list[str]:
    """Markdown in several blocks, one word per delta: ``## model``, then paragraphs of model-N words."""
    pieces = [f"## {model}\n\n"]
    for n in range(1, words + 1):
        pieces.append(f"{model}-{n}" + ("\n\n" if n % 9 == 0 else " "))
    return pieces


def paced(model: str, seconds: float) -> Scripted:
    events = stream_of(answer(model), model=model)
    gap = seconds / (len(events) - 1)
    chunks: list[Any] = []
    for i, event in enumerate(events):
        chunks.extend([gap, event] if i else [event])
    return Scripted(chunks=chunks, model=model)


def side_by_side(columns: dict[str, list[float]]) -> None:
    """One row of equal columns in the models' order, each at least 150 px wide."""
    assert list(columns) == list(MODELS), columns
    lefts, tops, widths = ([c[k] for c in columns.values()] for k in (0, 1, 2))
    assert max(tops) - min(tops) <= 2, columns
    assert lefts == sorted(lefts), columns
    assert all(b - a >= min(widths) - 2 for a, b in itertools.pairwise(lefts)), columns
    assert max(widths) - min(widths) <= 3 and min(widths) > 150, columns


def moved(before: dict[str, list[float]], after: dict[str, list[float]]) -> dict[str, Any]:
    """The boxes (left, top, width[, height]) that differ by more than 2 px between two frames."""
    return {
        key: (before[key], box)
        for key, box in after.items()
        if key in before and any(abs(a - b) > 2 for a, b in zip(before[key], box, strict=True))
    }


def test_columns_stream_side_by_side_busy_without_comms_and_nothing_moves_at_the_end(
    server: LabServer, page: LabPage, relay: Relay, browser_artifacts_dir: Path
) -> None:
    server.write_notebook("compare.ipynb", ["%load_ext shenma_magic", f"%%chat -m {','.join(MODELS)}\nq"])
    page.open("compare.ipynb")
    page.run_cell(0)
    page.wait_cell_idle(0, timeout=30)
    relay.enqueue(*(paced(model, seconds) for model, seconds in MODELS.items()))
    page.eval(SAMPLER, [page.panel_id, 1])

    page.run_cell(1)
    t0 = time.monotonic()
    page.wait_for_text_in_output(1, "gamma-2", timeout=20)  # the slowest column has started too
    page.screenshot(browser_artifacts_dir / "compare-streaming.png", what="notebook")
    page.wait_cell_idle(1, timeout=30)
    elapsed = time.monotonic() - t0
    page.page.wait_for_timeout(800)  # the final output settles
    page.eval("() => { window.__stop = true; }")
    samples: list[dict[str, Any]] = page.eval("() => window.__samples")
    assert elapsed < sum(MODELS.values()), elapsed  # at once, not one after another
    live = [s for s in samples if s["live"]]
    assert len(live) > 60, f"only {len(live)} frames of the live columns"

    # Busy for as long as the cell runs: no widget, no comm, no subshell request.
    running = [s for s in live if s["running"]]
    assert running and all(s["busy"] for s in running), [s["busy"] for s in running]
    # Side by side, each under its model's name, from the first frame that shows them to the last.
    shown = [s for s in live if len(s["columns"]) == len(MODELS)]
    assert len(shown) >= 0.9 * len(live), (len(shown), len(live))  # the first frames draw the outputs
    for sample in [*shown[:: max(1, len(shown) // 20)], shown[-1]]:
        side_by_side(sample["columns"])
    # The columns sealed blocks and moved their tails down: more than a first output and a tail each.
    assert max(s["filled"] for s in live) > 2 * len(MODELS) + 1
    # Never a block or a status line twice, also between the two messages that move a block.
    assert [s["twice"] for s in live if s["twice"]] == []
    assert [s["statuses"] for s in live if set(s["statuses"].values()) - {1}] == []
    # The fast column was complete while the slowest still streamed.
    assert any(f"alpha-{WORDS}" in s["text"] and f"gamma-{WORDS}" not in s["text"] for s in live)

    # The final output replaces the live ones: every column and every block keeps its box (<= 2 px).
    final = samples[-1]
    assert final["live"] is False
    side_by_side(final["columns"])
    # (Live, the box around a model's name is the first output of its column, not the whole column.)
    place = {k: v[:3] for k, v in live[-1]["columns"].items()}
    assert moved(place, {k: v[:3] for k, v in final["columns"].items()}) == {}
    assert len(final["blocks"]) == 3 * (1 + WORDS // 9) and set(final["blocks"]) == set(live[-1]["blocks"])
    assert moved(live[-1]["blocks"], final["blocks"]) == {}

    outputs = page.cell_outputs_model(1)
    assert len(outputs) == 1 and outputs[0]["output_type"] == "display_data", outputs
    assert set(outputs[0]["data"]) == {"text/html", "text/markdown", "text/plain"}
    assert page.output_locator(1).locator(WIDGET_SELECTOR).count() == 0
    assert all(f"{m}-{WORDS}" in page.cell_output_text(1) for m in MODELS)
    # Nothing in the log console (it shows a count when warnings such as "No such comm" arrive), and
    # no such warning from the kernel at all.
    log_item = page.page.locator(".jp-LogConsoleStatusItem")
    assert log_item.count() == 1 and "lm-mod-hidden" in (log_item.get_attribute("class") or "")
    assert "No such comm" not in server.log_tail(400)
    page.screenshot(browser_artifacts_dir / "compare-final.png", what="notebook")
