"""Prove the browser harness on plain notebooks (no project code), and pin down how JupyterLab treats
``update_display`` and ``clear_output(wait=True)``, which the live view of the chat magic relies on."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import HARNESS_PROBE
from tests.browser.harness import LabPage, LabServer

pytestmark = pytest.mark.browser


def _markdown_of(outputs: list[dict[str, Any]]) -> list[str]:
    out = []
    for o in outputs:
        md = o.get("data", {}).get("text/markdown")
        if md is not None:
            out.append("".join(md) if isinstance(md, list) else md)
    return out


def _h2(page: LabPage, i: int) -> list[str]:
    return list(page.output_locator(i).locator("h2").all_inner_texts())


PROBE = HARNESS_PROBE  # the shared server (tests/browser/conftest.py) passes it to its kernels


def test_stream_markdown_save_and_reopen(
    server: LabServer, page: LabPage, browser_artifacts_dir: Path
) -> None:
    t_start = time.monotonic()
    server.write_notebook(
        "plain.ipynb",
        [
            "import os, sys, time\nprint(sys.prefix, os.environ.get('HARNESS_PROBE'))",
            "for i in range(5):\n    print(i, flush=True)\n    time.sleep(0.4)",
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

    # display(..., display_id=True) then .update(...) with a Markdown bundle: rendered <h2>, one output.
    page.run_cell(2)
    page.wait_cell_idle(2)
    page.wait_for_selector_in_output(2, "h2", timeout=10)
    assert _h2(page, 2) == ["Final heading"]
    assert page.output_locator(2).locator("strong").inner_text() == "done"
    assert "draft" not in page.cell_output_text(2)
    assert len(page.cell_outputs_model(2)) == 1

    page.screenshot(browser_artifacts_dir / "harness-run.png")
    page.screenshot(browser_artifacts_dir / "harness-run-notebook.png", what="notebook")

    nb = page.save()
    outputs = [c["outputs"] for c in nb["cells"]]
    assert "".join(outputs[1][0]["text"]).split() == ["0", "1", "2", "3", "4"]
    assert _markdown_of(outputs[2]) == ["## Final heading\n\nall **done**"]

    # Kernel gone, notebook closed and opened again: the saved Markdown output is rendered from the file.
    server.shutdown_kernels()
    assert server.kernels() == []
    page.reopen()
    page.wait_for_selector_in_output(2, "h2", timeout=10)
    assert _h2(page, 2) == ["Final heading"]
    assert page.prompt(2) == "[3]:"
    page.screenshot(browser_artifacts_dir / "harness-reopened.png")
    elapsed = time.monotonic() - t_start
    assert elapsed < 90, f"harness run took {elapsed:.1f}s"


def test_updates_by_display_id_and_clear_output_wait(server: LabServer, page: LabPage) -> None:
    """What the live view relies on: several outputs of one cell updated in place by their display ids,
    and ``clear_output(wait=True)`` clearing only when the next output arrives, so the outputs are
    replaced in one step (the cell never shows empty) and a save writes only what came after."""
    server.write_notebook(
        "replace.ipynb",
        [
            "import time\nfrom IPython.display import display, clear_output\n"
            "h1 = display({'text/html': '<p class=\"one\">one</p>'}, raw=True, display_id=True)\n"
            "h2 = display({'text/html': '<p class=\"two\">two</p>'}, raw=True, display_id=True)\n"
            "time.sleep(0.6)\n"
            "h1.update({'text/html': '<p class=\"one\">one updated</p>'}, raw=True)\n"
            "clear_output(wait=True)\n"
            "time.sleep(1.2)\n"
            "display({'text/html': '<p class=\"fin\">final</p>', 'text/plain': 'final'}, raw=True)",
        ],
    )
    page.open("replace.ipynb")
    page.run_cell(0)
    page.wait_for_text_in_output(0, "one updated", timeout=10)
    # clear_output(wait=True) has been sent: the outputs stay until the next one arrives.
    time.sleep(0.4)
    assert page.prompt(0) == "[*]:"
    assert page.cell_output_text(0).split("\n") == ["one updated", "two"]
    page.wait_cell_idle(0)
    page.wait_for_selector_in_output(0, "p.fin", timeout=10)
    assert page.cell_output_text(0) == "final"
    assert len(page.cell_outputs_model(0)) == 1
    (out,) = page.save()["cells"][0]["outputs"]
    assert "".join(out["data"]["text/plain"]) == "final"
