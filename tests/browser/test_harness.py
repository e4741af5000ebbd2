"""Prove the browser harness on plain notebooks (no project code), and pin down how JupyterLab treats
``update_display`` around ipywidgets, which the chat magic's rendering relies on."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import LabPage, LabServer

pytestmark = pytest.mark.browser

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LOADING = "Loading widget"


def _markdown_of(outputs: list[dict[str, Any]]) -> list[str]:
    out = []
    for o in outputs:
        md = o.get("data", {}).get("text/markdown")
        if md is not None:
            out.append("".join(md) if isinstance(md, list) else md)
    return out


def _h2(page: LabPage, i: int) -> list[str]:
    return list(page.output_locator(i).locator("h2").all_inner_texts())


PROBE = "probe-value-42"


@pytest.fixture(scope="module")
def server() -> Iterator[LabServer]:
    """One server for the module, with an extra environment variable that the kernel must inherit."""
    with LabServer(env={"HARNESS_PROBE": PROBE}) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server: LabServer) -> Iterator[LabPage]:
    """One browser for the module; later tests open their notebooks inside the loaded JupyterLab."""
    with LabPage(server) as pg:
        yield pg


def test_stream_widget_markdown_save_and_reopen(
    server: LabServer, page: LabPage, browser_artifacts_dir: Path
) -> None:
    t_start = time.monotonic()
    server.write_notebook(
        "plain.ipynb",
        [
            "import os, sys, time\nprint(sys.prefix, os.environ.get('HARNESS_PROBE'))",
            "for i in range(5):\n    print(i, flush=True)\n    time.sleep(0.4)",
            "import ipywidgets as W\nfrom IPython.display import display\n"
            "w = W.HTML('<b>first</b>')\ndisplay(w)\ntime.sleep(0.5)\n"
            "w.value = '<b class=\"upd\">second</b>'",
            "h = display({'text/plain': 'draft', 'text/markdown': '*draft*'}, raw=True, display_id=True)\n"
            "time.sleep(0.8)\n"
            "h.update({'text/markdown': '## Final heading\\n\\nall **done**', 'text/plain': 'final'},"
            " raw=True)",
        ],
    )
    page.open("plain.ipynb")

    # The kernel is the venv's python and inherits the server's extra environment.
    page.run_cell(0)
    page.wait_cell_idle(0)
    assert page.cell_output_text(0).split() == [sys.prefix, PROBE]

    # Streaming: the first line is in the page while the cell still runs.
    page.run_cell(1)
    waited = page.wait_for_text_in_output(1, "0", timeout=10)
    prompt_then, text_then = page.prompt(1), page.cell_output_text(1)
    assert prompt_then == "[*]:", f"cell already finished when its first line showed ({waited:.2f}s)"
    assert "4" not in text_then
    assert waited < 1.5
    page.wait_cell_idle(1, timeout=15)
    assert page.cell_output_text(1).split() == ["0", "1", "2", "3", "4"]

    # An ipywidgets.HTML renders (not "Loading widget...") and shows its updated value.
    page.run_cell(2)
    page.wait_cell_idle(2)
    page.wait_for_selector_in_output(2, ".widget-html b.upd", timeout=15)
    assert page.cell_output_text(2).strip() == "second"
    assert LOADING not in page.cell_output_text(2)

    # display(..., display_id=True) then .update(...) with a Markdown bundle: rendered <h2>, one output.
    page.run_cell(3)
    page.wait_cell_idle(3)
    page.wait_for_selector_in_output(3, "h2", timeout=10)
    assert _h2(page, 3) == ["Final heading"]
    assert page.output_locator(3).locator("strong").inner_text() == "done"
    assert "draft" not in page.cell_output_text(3)
    assert len(page.cell_outputs_model(3)) == 1

    page.screenshot(browser_artifacts_dir / "harness-run.png")
    page.screenshot(browser_artifacts_dir / "harness-run-notebook.png", what="notebook")

    nb = page.save()
    outputs = [c["outputs"] for c in nb["cells"]]
    assert "".join(outputs[1][0]["text"]).split() == ["0", "1", "2", "3", "4"]
    assert _markdown_of(outputs[3]) == ["## Final heading\n\nall **done**"]

    # Kernel gone, page reloaded: the saved Markdown output is still rendered, from the file.
    server.shutdown_kernels()
    assert server.kernels() == []
    page.reload()
    page.wait_for_selector_in_output(3, "h2", timeout=10)
    assert _h2(page, 3) == ["Final heading"]
    assert page.prompt(3) == "[4]:"
    page.screenshot(browser_artifacts_dir / "harness-reopened.png")
    elapsed = time.monotonic() - t_start
    assert elapsed < 90, f"harness run took {elapsed:.1f}s"


def test_update_display_inside_output_widget_is_swallowed(
    server: LabServer, page: LabPage, browser_artifacts_dir: Path
) -> None:
    """Finding: a display_data shown inside ``with out:`` (ipywidgets.Output) cannot be updated with
    update_display / DisplayHandle.update: not while inside the ``with``, not after it in the same cell,
    not from a later cell. The update is dropped: neither applied nor shown anywhere else."""
    head = "import time, ipywidgets as W\nfrom IPython.display import display, update_display, Markdown\n"
    server.write_notebook(
        "outwidget.ipynb",
        [
            head + "out_a = W.Output(); display(out_a)\nwith out_a:\n"
            "    display(Markdown('first A'), display_id='qa')\n    time.sleep(0.3)\n"
            "    update_display(Markdown('## updated A'), display_id='qa')",
            "out_b = W.Output(); display(out_b)\nwith out_b:\n"
            "    display(Markdown('first B'), display_id='qb')\n"
            "time.sleep(0.3)\nupdate_display(Markdown('## updated B'), display_id='qb')",
            "out_c = W.Output(); display(out_c)\nwith out_c:\n"
            "    hc = display(Markdown('first C'), display_id=True)",
            "hc.update(Markdown('## updated C'))",
            # Control: the same update without an Output widget works.
            "hd = display(Markdown('first D'), display_id=True)\ntime.sleep(0.3)\n"
            "hd.update(Markdown('## updated D'))",
        ],
    )
    page.open("outwidget.ipynb")
    for i in range(5):
        page.run_cell(i)
        page.wait_cell_idle(i)
    page.wait_for_selector_in_output(4, "h2", timeout=10)
    time.sleep(1.0)  # give any late update time to land before asserting it did not
    for i, tag in ((0, "A"), (1, "B"), (2, "C")):
        assert page.cell_output_text(i).strip() == f"first {tag}"
        assert _h2(page, i) == []
        assert LOADING not in page.cell_output_text(i)
    assert page.cell_output_text(3) == ""
    assert page.cell_outputs_model(3) == []
    assert _h2(page, 4) == ["updated D"]
    page.screenshot(browser_artifacts_dir / "output-widget-update-display.png", what="notebook")


def test_display_handle_update_replaces_widget_view(
    server: LabServer, page: LabPage, browser_artifacts_dir: Path
) -> None:
    """Finding: ``h = display(widget, display_id=True)`` then ``h.update({markdown, plain}, raw=True)``
    replaces the widget view in place by the rendered Markdown, and a save writes only the Markdown output."""
    bundle = "{'text/markdown': '## replaced %s', 'text/plain': 'replaced %s'}"
    server.write_notebook(
        "widget2md.ipynb",
        [
            "import time, ipywidgets as W\nfrom IPython.display import display\n"
            "hf = display(W.HTML('<b>widget F</b>'), display_id=True)\ntime.sleep(0.5)\n"
            f"hf.update({bundle % ('F', 'F')}, raw=True)",
            "hg = display(W.HTML('<b class=\"wg\">widget G</b>'), display_id=True)",
            f"hg.update({bundle % ('G', 'G')}, raw=True)",
        ],
    )
    page.open("widget2md.ipynb")
    page.run_cell(0)
    page.wait_cell_idle(0)
    page.run_cell(1)
    page.wait_cell_idle(1)
    page.wait_for_selector_in_output(1, ".widget-html b.wg", timeout=15)  # the widget view is really shown
    assert WIDGET_VIEW in page.cell_outputs_model(1)[0]["data"]
    page.run_cell(2)
    page.wait_cell_idle(2)
    for i, tag in ((0, "F"), (1, "G")):
        page.wait_for_selector_in_output(i, "h2", timeout=10)
        assert _h2(page, i) == [f"replaced {tag}"]
        assert page.output_locator(i).locator(".jupyter-widgets, .widget-html").count() == 0
        model = page.cell_outputs_model(i)
        assert len(model) == 1
        assert set(model[0]["data"]) == {"text/markdown", "text/plain"}
    assert page.cell_output_text(2) == ""
    page.screenshot(browser_artifacts_dir / "widget-replaced-by-markdown.png", what="notebook")

    nb = page.save()
    for i, tag in ((0, "F"), (1, "G")):
        (out,) = nb["cells"][i]["outputs"]
        assert out["output_type"] == "display_data"
        assert WIDGET_VIEW not in out["data"]
        assert _markdown_of([out]) == [f"## replaced {tag}"]
        assert "".join(out["data"]["text/plain"]) == f"replaced {tag}"
    assert nb["cells"][2]["outputs"] == []
