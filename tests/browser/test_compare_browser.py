"""``%%chat -m a,b,c`` in a real JupyterLab in headless Chromium, against the local relay.

What a person sees: three columns side by side that fill while the cell runs (widgets), then the same
columns as a normal rendered output (no widget) at the same places: the final layout is the live one.
Screenshots go to tests/artifacts/browser/compare-*.png.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import LabPage, LabServer
from tests.relay import Relay, Scripted, stream_of

pytestmark = pytest.mark.browser

MODELS = {"alpha": 3.0, "beta": 4.5, "gamma": 6.0}  # seconds each answer takes
WIDGET_SELECTOR = ".jupyter-widgets, .widget-html, .widget-output"
LIVE_COLUMNS = ".widget-gridbox > .widget-vbox"
FINAL_COLUMNS = ".shenma-compare > div"

_RECTS_JS = """
([id, i, selector]) => {
  const p = [...window.jupyterapp.shell.widgets('main')].find(w => w.id === id);
  const o = p.content.widgets[i].node.querySelector('.jp-Cell-outputArea');
  if (!o) return [];
  const base = o.getBoundingClientRect();
  return [...o.querySelectorAll(selector)].map(el => {
    const r = el.getBoundingClientRect();
    return {left: r.left - base.left, top: r.top - base.top, width: r.width, height: r.height,
            text: el.innerText.slice(0, 60)};
  });
}
"""


def answer(model: str, words: int = 36) -> list[str]:
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


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    with Relay() as r:
        yield r


@pytest.fixture(scope="module")
def server(relay: Relay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    env = {
        "SHENMA_BASE_URL": relay.url,
        "SHENMA_API_KEY": "sk-browser-test-0000000000000000fake",
        "XDG_CONFIG_HOME": str(tmp_path_factory.mktemp("xdg-config")),
    }
    with LabServer(env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server: LabServer) -> Iterator[LabPage]:
    with LabPage(server) as pg:
        yield pg


def rects(page: LabPage, i: int, selector: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.eval(_RECTS_JS, [page.panel_id, i, selector])
    return found


def side_by_side(columns: list[dict[str, Any]]) -> None:
    assert len(columns) == len(MODELS), columns
    tops = [c["top"] for c in columns]
    lefts = [c["left"] for c in columns]
    widths = [c["width"] for c in columns]
    assert max(tops) - min(tops) <= 2, columns  # one row
    assert lefts == sorted(lefts), columns
    assert all(b - a >= min(widths) - 2 for a, b in itertools.pairwise(lefts)), columns
    assert max(widths) - min(widths) <= 3 and min(widths) > 150, columns  # equal shares of the width


def test_columns_stream_side_by_side_and_the_final_layout_is_the_live_one(
    server: LabServer, page: LabPage, relay: Relay, browser_artifacts_dir: Path
) -> None:
    server.write_notebook("compare.ipynb", ["%load_ext shenma_magic", f"%%chat -m {','.join(MODELS)}\nq"])
    page.open("compare.ipynb")
    page.run_cell(0)
    page.wait_cell_idle(0, timeout=30)
    relay.enqueue(*(paced(model, seconds) for model, seconds in MODELS.items()))

    page.run_cell(1)
    t0 = time.monotonic()
    page.wait_for_text_in_output(1, "gamma-2", timeout=20)  # the slowest column has started too
    assert page.prompt(1) == "[*]:"
    text = page.cell_output_text(1)
    assert "alpha-1" in text and "beta-1" in text and "gamma-36" not in text
    live = rects(page, 1, LIVE_COLUMNS)
    side_by_side(live)
    assert [c["text"].split("\n")[0] for c in live] == list(MODELS)  # each column headed by its model
    page.screenshot(browser_artifacts_dir / "compare-streaming.png", what="notebook")

    # The fast column finishes while the others stream: it is complete, the slowest is not.
    page.wait_for_text_in_output(1, "alpha-36", timeout=20)
    if page.prompt(1) == "[*]:":
        assert "gamma-36" not in page.cell_output_text(1)
        side_by_side(rects(page, 1, LIVE_COLUMNS))
    page.wait_cell_idle(1, timeout=30)
    elapsed = time.monotonic() - t0
    assert elapsed < sum(MODELS.values()), elapsed  # at once, not one after another

    model = page.cell_outputs_model(1)
    assert len(model) == 1 and model[0]["output_type"] == "display_data", model
    assert set(model[0]["data"]) == {"text/html", "text/markdown", "text/plain"}
    assert page.output_locator(1).locator(WIDGET_SELECTOR).count() == 0
    final = rects(page, 1, FINAL_COLUMNS)
    side_by_side(final)
    for before, after in zip(live, final, strict=True):  # no jump: each column stays where it was
        assert abs(before["left"] - after["left"]) <= 3 and abs(before["width"] - after["width"]) <= 3, (
            live,
            final,
        )
    text = page.cell_output_text(1)
    assert all(f"{m}-36" in text for m in MODELS)
    page.screenshot(browser_artifacts_dir / "compare-final.png", what="notebook")
