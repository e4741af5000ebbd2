"""``%%chat --bg`` with real kernels (ipykernel 7.x and 6.x) through jupyter_client, against the relay.

Each kernel's IOPub messages are applied as JupyterLab does (tests/frontend.py), so "the output is in the
right cell" is checked the way a user would see it: outputs by parent, updates by display id, widgets
by comm id.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests._util import run_notebook
from tests.frontend import WIDGET_MIME
from tests.kernels import Kernel, ipykernel_version, kernel_python
from tests.relay import Relay, Scripted, stream_of, wait_until

pytestmark = pytest.mark.slow

KEY = "sk-BACKGROUNDKEY0123456789abcdef55"
SETUP = """\
%load_ext shenma_magic
import shenma_magic._client, shenma_magic._display  # loaded by any earlier %%chat
"""


def words(n: int) -> str:
    return " ".join(f"word{i}" for i in range(1, n + 1))


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    with Relay() as server:
        yield server


def kernel_env(relay: Relay, tmp: Path) -> dict[str, str]:
    return {
        "SHENMA_BASE_URL": relay.url,
        "SHENMA_API_KEY": KEY,
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "IPYTHONDIR": str(tmp / "ipython"),
    }


@pytest.fixture(scope="module", params=["7", "6"])
def kernel(
    request: pytest.FixtureRequest, relay: Relay, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kernel]:
    python = kernel_python(request.param)
    assert ipykernel_version(python).startswith(request.param + ".")
    k = Kernel(python, kernel_env(relay, tmp_path_factory.mktemp("k")))
    k.execute(SETUP)
    yield k
    k.shutdown(now=True)


def final_data(k: Kernel, msg_id: str) -> dict[str, Any]:
    outputs = k.outputs(msg_id)
    assert len(outputs) == 1, outputs
    data: dict[str, Any] = outputs[0]["data"]
    return data


def returns_within(k: Kernel, msg_id: str, limit: float, what: str) -> None:
    """The cell ``msg_id`` returns within ``limit`` seconds (printed, for the run's log)."""
    _, took = k.reply(msg_id)
    print(f"{what} returned in {took:.3f} s")
    assert took < limit, f"{what} took {took:.2f} s to return"


def run_while_it_streams(k: Kernel) -> str:
    """A cell still running while a reply streams (the dangerous case for routing); it prints "cell C
    output"."""
    c = k.run('import time; time.sleep(1.0); print("cell C output")')
    k.reply(c)
    return c


def assert_only_in_its_cell(k: Kernel, word: str) -> None:
    """No output holding ``word`` went to no cell, and no widget holds it (no second copy of the answer in
    widget state)."""
    with k.lock:
        assert not [m for m in k.frontend.orphans if word in str(m["content"])]
        assert not [w for w in k.frontend.widgets.values() if word in str(w)]


def ctrl_c_on_wait(k: Kernel) -> None:
    """``%chat wait``, then Ctrl-C while it waits: the cell fails with ChatInterrupted and says that the
    partial answers are kept."""
    w = k.run("%chat wait")
    time.sleep(0.3)
    k.km.interrupt_kernel()
    reply, _ = k.reply(w)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "ChatInterrupted"
    k.settle(w)
    assert "stopped 1 background reply: the partial answers are kept" in k.text(w)


def run_headless(relay: Relay, tmp_path: Path, bg_cell: str, check_cell: str) -> tuple[dict[str, Any], str]:
    """SETUP, ``bg_cell`` and ``check_cell`` run headless by nbclient (no frontend: a ``--bg`` turn runs in
    the foreground). The data of the one display the ``--bg`` cell shows, and what the check cell printed."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in (SETUP, bg_cell, check_cell)]
    env = {**kernel_env(relay, tmp_path), "PYTHONPATH": str(Path(__file__).parent.parent)}
    run_notebook(nb, env=env, cwd=tmp_path)
    outputs = nb.cells[1].outputs
    rich = [o for o in outputs if o.output_type == "display_data"]
    assert len(rich) == 1, outputs
    data: dict[str, Any] = rich[0]["data"]
    assert WIDGET_MIME not in data
    text: str = nb.cells[2].outputs[0]["text"]
    return data, text


def paragraphs(n: int) -> list[str]:
    # Finished paragraphs make the live view append blocks while other cells run, not only re-send its tail.
    return [f"Paragraph {i} of the answer.\n\n" for i in range(1, n + 1)]


def test_bg_reply_streams_into_its_own_cell_while_other_cells_run(kernel: Kernel, relay: Relay) -> None:
    k = kernel
    relay.enqueue(Scripted(chunks=stream_of(paragraphs(30), delay=0.1)))
    a = k.run("%%chat --bg -o r --new\nwrite thirty paragraphs")
    returns_within(k, a, 1.0, "the --bg cell")
    assert wait_until(lambda: "Paragraph 2 " in k.text(a), 5), k.text(a)
    b = k.run('print("cell B output")')
    returns_within(k, b, 0.5, "a cell run while the reply streams")
    c = run_while_it_streams(k)
    live = k.text(a)
    assert "Paragraph 1 " in live and "Paragraph 30 " not in live, live  # A showed it as it streamed
    d = k.run("%chat wait\nprint(r.complete, r.count('Paragraph'))")
    k.reply(d, timeout=30)
    for cell in (b, c, d):
        k.settle(cell)
    assert k.text(b) == "cell B output\n"
    assert k.text(c) == "cell C output\n"
    assert k.text(d) == "1 background reply ended\nTrue 30\n"
    data = final_data(k, a)
    assert WIDGET_MIME not in data
    assert data["text/plain"] == "".join(paragraphs(30))
    assert "Paragraph 30 of the answer." in data["text/markdown"] and "gpt-4o-mini" in data["text/markdown"]
    assert_only_in_its_cell(k, "Paragraph")


def test_the_checker_sees_output_from_a_plain_thread_land_in_the_running_cell(kernel: Kernel) -> None:
    # The trap the outlet avoids, shown with the same frontend rules: without it, display() from a thread
    # goes to whichever cell is running (both ipykernel versions).
    k = kernel
    a = k.execute(
        "import threading, time\n"
        "from IPython.display import display\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), display('from the thread'))).start()"
    )
    b = k.run("time.sleep(1.0)")
    k.reply(b)
    k.settle(b)
    assert "from the thread" in k.text(b)
    assert "from the thread" not in k.text(a)


def test_turns_of_one_conversation_wait_for_each_other_and_new_ones_do_not(
    kernel: Kernel, relay: Relay
) -> None:
    k = kernel
    before = len(relay.chat_requests)
    first = k.run("%%chat --bg --new\n/slow 10 1")
    second = k.run("%%chat --bg -o r2\nwhat did you say?")
    k.reply(second)
    assert wait_until(lambda: "waiting for background reply" in k.text(second), 3), k.text(second)
    # A --new turn starts at once, while the first still streams.
    other = k.run("%%chat --bg --new\n/slow 4 0.4")
    k.reply(other)
    assert wait_until(lambda: len(relay.chat_requests) >= before + 2, 3)
    requests = relay.chat_requests[before:]
    assert requests[1].json["messages"][-1]["content"] == "/slow 4 0.4"
    assert len(requests[1].json["messages"]) == 1
    k.execute("%chat wait")
    requests = relay.chat_requests[before:]
    assert len(requests) == 3
    asked_second = requests[2].json["messages"]
    # Sent after the first turn ended, with it in the history.
    assert [msg["role"] for msg in asked_second] == ["user", "assistant", "user"]
    assert asked_second[1]["content"] == words(10)
    assert final_data(k, first)["text/plain"] == words(10)
    assert final_data(k, second)["text/plain"] == "echo: what did you say?"
    assert final_data(k, other)["text/plain"] == words(4)
    assert "True" in k.text(k.execute("print(r2.complete)"))


def test_ctrl_c_on_wait_stops_replies_and_keeps_partial_answers(kernel: Kernel, relay: Relay) -> None:
    k = kernel
    a = k.run("%%chat --bg -o cut --new\n/slow 200 40")
    k.reply(a)
    assert wait_until(lambda: "word3 " in k.text(a), 10), k.text(a)
    request = relay.chat_requests[-1]
    ctrl_c_on_wait(k)
    assert relay.wait(lambda: request.outcome == "client_closed", 5), request.outcome
    check = k.execute("print(cut.complete, 3 <= len(cut.split()) < 200, cut.error)")
    assert k.text(check).startswith("False True interrupted"), k.text(check)
    data = final_data(k, a)
    assert data["text/plain"].startswith("word1 word2 word3") and "word200" not in data["text/plain"]
    assert "interrupted" in data["text/markdown"]


def test_shutdown_with_a_reply_in_flight_closes_its_connection(relay: Relay, tmp_path: Path) -> None:
    k = Kernel(kernel_python("7"), kernel_env(relay, tmp_path))
    try:
        k.execute(SETUP)
        a = k.run("%%chat --bg\n/slow 300 60")
        k.reply(a)
        assert wait_until(lambda: "word2 " in k.text(a), 10)
        request = relay.chat_requests[-1]
    finally:
        started = time.monotonic()
        k.shutdown(now=False)
        took = time.monotonic() - started
    assert relay.wait(lambda: request.outcome == "client_closed", 5), request.outcome
    # shutdown_kernel waits up to 5 s for a clean exit before killing: a clean exit is well under it.
    assert took < 4.0, f"shutdown took {took:.1f} s"


def test_headless_run_keeps_the_whole_answer_in_the_bg_cell(relay: Relay, tmp_path: Path) -> None:
    data, printed = run_headless(
        relay, tmp_path, "%%chat --bg -o r\n/slow 12 0.6", "print(r.complete, len(r.split()))"
    )
    assert data["text/plain"] == words(12)
    assert re.search(r"ran in the foreground", data["text/markdown"])
    assert printed == "True 12\n"


def test_a_foreground_turn_waits_for_the_background_one_and_says_so(kernel: Kernel, relay: Relay) -> None:
    k = kernel
    bg = k.run("%%chat --bg --new\n/slow 8 0.8")
    k.reply(bg)
    fg = k.execute("%%chat -o after\nand then?")
    assert "waiting for background reply" in k.text(fg)
    asked = relay.chat_requests[-1].json["messages"]
    assert [msg["role"] for msg in asked] == ["user", "assistant", "user"] and asked[1]["content"] == words(8)
    assert final_data(k, bg)["text/plain"] == words(8)
    assert "echo: and then?" in k.text(fg)


def test_an_untrusted_tool_is_not_run_from_the_background_and_the_cell_says_why(kernel: Kernel) -> None:
    k = kernel
    k.execute("import shenma_magic\n@shenma_magic.tool\ndef add(a: int, b: int) -> int:\n    return a + b")
    try:
        bg = k.run('%%chat --bg --new\n/tool add {"a": 1, "b": 2}')
        k.reply(bg)
        other = k.run("time.sleep(1.0)")  # the tool round happens while this cell runs
        k.reply(other)
        k.execute("%chat wait")
        shown = k.text(bg)
        assert "a background reply cannot ask" in shown and "not run: add(a=1, b=2)" in shown
        assert "echo: tool said error: the user did not allow this call" in shown
        assert k.text(other) == ""
    finally:
        k.execute("shenma_magic.tools().clear()")


def test_jobs_lists_what_is_in_flight(kernel: Kernel) -> None:
    k = kernel
    bg = k.run("%%chat --bg --new\n/slow 6 1.5")
    k.reply(bg)
    listed = k.execute("%chat jobs")
    assert re.search(r"#\d+\s+running\s+[\d.]+ s\s+gpt-4o-mini: /slow 6 1.5", k.text(listed)), k.text(listed)
    k.execute("%chat wait")
    assert k.text(k.execute("%chat jobs")) == "no background replies in flight\n"


# --------------------------------------------------------------------------- a comparison in the background


def model_paragraphs(model: str, n: int) -> list[str]:
    return [f"{model} paragraph {i} of the answer.\n\n" for i in range(1, n + 1)]


def test_bg_comparison_streams_into_its_own_cell_while_other_cells_run(kernel: Kernel, relay: Relay) -> None:
    k = kernel
    models = ("alpha", "beta", "gamma")
    for model, delay in zip(models, (0.08, 0.1, 0.12), strict=True):
        chunks = stream_of(model_paragraphs(model, 20), delay=delay, model=model)
        relay.enqueue(Scripted(chunks=chunks, model=model))
    a = k.run("%%chat -m alpha,beta,gamma --bg -o rs --new\ncompare yourselves")
    returns_within(k, a, 1.0, "the --bg comparison cell")
    assert wait_until(lambda: all(f"{m} paragraph 2 " in k.text(a) for m in models), 5), k.text(a)
    b = k.run('print("cell B output", "rs" in globals())')
    returns_within(k, b, 0.5, "a cell run while the comparison streams")
    j = k.run("%chat jobs")
    k.reply(j)
    c = run_while_it_streams(k)
    live = k.text(a)
    assert "alpha paragraph 1 " in live and "gamma paragraph 20 " not in live, live  # it streamed in A
    d = k.run("%chat wait\nprint({m: (r.complete, r.count('paragraph')) for m, r in rs.items()})")
    k.reply(d, timeout=30)
    for cell in (b, j, c, d):
        k.settle(cell)
    assert k.text(b) == "cell B output False\n"  # -o is bound when every model has ended, not before
    assert re.fullmatch(r"\s+#\d+\s+running\s+[\d.]+ s\s+alpha, beta, gamma: compare yourselves\n", k.text(j))
    assert k.text(c) == "cell C output\n"
    bound = "{'alpha': (True, 20), 'beta': (True, 20), 'gamma': (True, 20)}"
    assert k.text(d) == f"1 background reply ended\n{bound}\n"
    data = final_data(k, a)
    assert WIDGET_MIME not in data
    for model in models:
        assert "".join(model_paragraphs(model, 20)) in data["text/plain"]
        assert (
            f"### {model}" in data["text/markdown"]
            and f"{model} paragraph 20 of the answer." in data["text/html"]
        )
    assert_only_in_its_cell(k, "paragraph")
    with k.lock:
        assert k.frontend.widgets == {}  # plain outputs: no widget, no comm


def test_ctrl_c_on_wait_stops_every_column_and_keeps_partial_answers(kernel: Kernel, relay: Relay) -> None:
    k = kernel
    before = len(relay.chat_requests)
    a = k.run("%%chat -m alpha,beta --bg -o cut --new\n/slow 200 40")
    k.reply(a)
    assert wait_until(lambda: k.text(a).count("word3 ") >= 2, 10), k.text(a)
    requests = relay.chat_requests[before:]
    ctrl_c_on_wait(k)
    assert relay.wait(lambda: all(r.outcome == "client_closed" for r in requests), 5), [
        r.outcome for r in requests
    ]
    check = k.execute(
        "print([(m, r.complete, 3 <= len(r.split()) < 200, r.error[:11]) for m, r in cut.items()])"
    )
    assert k.text(check) == (
        "[('alpha', False, True, 'interrupted'), ('beta', False, True, 'interrupted')]\n"
    ), k.text(check)
    plain = final_data(k, a)["text/plain"]
    assert plain.count("word1 word2 word3") == 2 and "word200" not in plain


def test_headless_run_keeps_the_whole_comparison_in_the_bg_cell(relay: Relay, tmp_path: Path) -> None:
    check = "print([(m, r.complete, len(r.split())) for m, r in rs.items()])"
    data, printed = run_headless(relay, tmp_path, "%%chat -m alpha,beta --bg -o rs\n/slow 12 0.6", check)
    assert data["text/plain"].count(words(12)) == 2
    assert len(re.findall(r"ran in the foreground", data["text/markdown"])) == 2  # in each model's status
    assert printed == "[('alpha', True, 12), ('beta', True, 12)]\n"


def test_a_plain_turn_after_a_bg_comparison_waits_and_continues_every_branch(
    kernel: Kernel, relay: Relay
) -> None:
    k = kernel
    before = len(relay.chat_requests)
    bg = k.run("%%chat -m alpha,beta --bg --new\n/slow 8 0.8")
    k.reply(bg)
    # No -m: the comparison in flight is heading for branches, so this continues each of them.
    fg = k.execute("%%chat -o both\nand then?")
    assert "waiting for background reply" in k.text(fg)
    sent = relay.chat_requests[before:]
    assert len(sent) == 4
    later = [r for r in sent if r.json["messages"][-1]["content"] == "and then?"]
    assert sorted(r.json["model"] for r in later) == ["alpha", "beta"]
    for request in later:
        asked = request.json["messages"]
        assert [m["role"] for m in asked] == ["user", "assistant", "user"] and asked[1]["content"] == words(8)
    assert k.text(k.execute("print(sorted(both))")) == "['alpha', 'beta']\n"
    assert final_data(k, bg)["text/plain"].count(words(8)) == 2
