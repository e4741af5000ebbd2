"""shenma_magic.map and %%chat --over: many independent requests against local servers.

The server is tests/pacedrelay.py (an asyncio relay that serves many paced streams at once and counts
them), tests/relay.py for the magic, and llmock as an independent peer for the retry path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import shenma_magic
from shenma_magic import ConfigError, Reply, Session
from shenma_magic._batch import BatchInterrupted, run_map
from shenma_magic._keys import KeyStore
from shenma_magic._progress import Snapshot
from tests.pacedrelay import PacedRelay

KEY = "sk-BATCHKEY0123456789abcdefXYZ9f3a"
PRICES = {"gpt-4o-mini": {"input": 1000, "output": 1000}}  # 0.001 per token: easy sums


class Recorder:
    """A progress display that keeps what it was shown."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.snaps: list[Snapshot] = []
        self.summary = ""

    def note(self, line: str) -> None:
        self.notes.append(line)

    def update(self, snap: Snapshot) -> None:
        self.snaps.append(snap)

    def close(self, summary: str) -> None:
        self.summary = summary


@pytest.fixture
def paced() -> Iterator[PacedRelay]:
    with PacedRelay(latency=0.05) as server:
        yield server


def make_session(url: str, tmp_path: Path, **settings: Any) -> Session:
    return Session(base_url=url, api_key=KEY, keys=KeyStore(tmp_path / "keys.json", environ={}), **settings)


@pytest.fixture
def session(paced: PacedRelay, tmp_path: Path) -> Session:
    return make_session(paced.url, tmp_path)


def rows(n: int) -> list[str]:
    return [f"row {i}" for i in range(n)]


def run(session: Session, template: Any, data: Any, **kw: Any) -> tuple[Any, Recorder]:
    recorder = Recorder()
    return run_map(session, template, data, display=recorder, **kw), recorder


# -- order, failures, the summary -----------------------------------------------------------------------


def test_answers_keep_the_order_of_the_rows_and_a_failed_row_says_why(
    session: Session, paced: PacedRelay
) -> None:
    paced.refuse("row 7")
    # The first row is the slowest: it finishes last, and must still come first.
    paced.latency_for = lambda text: 0.4 if text.endswith("row 0") else 0.02
    out, shown = run(session, "Say {}", rows(30), concurrency=6)
    assert isinstance(out, list) and len(out) == 30
    for i, answer in enumerate(out):
        assert isinstance(answer, Reply)
        if i == 7:
            assert answer.error and "HTTP 400" in answer.error and "refused" in answer.error
            assert not answer.complete
        else:
            assert answer == f"echo: Say row {i}" and answer.error is None and answer.complete
    assert paced.arrivals[-1][1] != "Say row 0"  # row 0 was not simply sent last
    assert shown.summary.startswith("29 done, 1 failed (HTTP 400")
    assert "row 7" in shown.summary


def test_row_failures_never_raise_and_every_row_gets_its_reason(session: Session, paced: PacedRelay) -> None:
    paced.refuse("row", 400)  # every row
    out, shown = run(session, "{}", rows(5), concurrency=2)
    assert all(isinstance(r, Reply) and r.error and "HTTP 400" in r.error for r in out)
    assert shown.summary.startswith("0 done, 5 failed")


@pytest.mark.parametrize("bound", [1, 5, 16])
def test_concurrency_never_goes_above_the_bound(tmp_path: Path, bound: int) -> None:
    with PacedRelay(latency=0.08) as paced:
        session = make_session(paced.url, tmp_path)
        out, _ = run(session, "{}", rows(4 * bound + 3), concurrency=bound)
        assert all(r.complete for r in out)
        assert paced.peak == bound  # never above it, and the bound is used
        assert paced.requests == 4 * bound + 3


def test_one_connection_pool_is_kept_alive(session: Session, paced: PacedRelay) -> None:
    # 40 rows over 4 slots: the connections are reused, not one per row.
    out, _ = run(session, "{}", rows(40), concurrency=4)
    assert all(r.complete for r in out)
    assert paced.connections <= 4 + 1


# -- the relay pushing back ------------------------------------------------------------------------------


def test_429_with_retry_after_is_retried_and_the_wait_is_honoured(
    session: Session, paced: PacedRelay
) -> None:
    paced.fail_next(2, 429, retry_after=0.6)
    out, shown = run(session, "{}", rows(10), concurrency=2)
    assert [str(r) for r in out] == [f"echo: row {i}" for i in range(10)]
    assert paced.requests == 12 and paced.statuses[429] == 2
    first_429 = next(t for t, _, status, _ in paced.arrivals if status == 429)
    later = [t for t, _, status, _ in paced.arrivals if status == 200 and t > first_429]
    # Nothing was sent while the relay had asked to wait (a little slack for the clocks).
    assert min(later) - first_429 >= 0.55
    assert "2 retries" in shown.summary


def test_concurrency_is_lowered_under_pushback_and_raised_again_after(tmp_path: Path) -> None:
    with PacedRelay(latency=0.1) as paced:
        paced.capacity = 2  # a relay that allows 2 at once, then recovers
        paced.capacity_retry_after = 0.05
        session = make_session(paced.url, tmp_path)

        def recover() -> None:
            while paced.statuses[200] < 30:
                time.sleep(0.01)
            paced.capacity = None

        threading.Thread(target=recover, daemon=True).start()
        out, _ = run(session, "{}", rows(150), concurrency=12)
    assert all(r.complete for r in out)
    # AIMD: a burst of 12 against a limit of 2 gets pushed back, and then the client stays near the limit
    # instead of knocking 12 at a time (which would be ~10 refusals per answer).
    assert paced.statuses[429] < 60
    recovered = [current for _, _, status, current in paced.arrivals[-40:] if status == 200]
    assert max(recovered) >= 10  # back up to the bound once the relay recovered


def test_a_row_that_keeps_failing_stops_being_retried(session: Session, paced: PacedRelay) -> None:
    paced.refuse("row 3", 500, retry_after=0.02)
    paced.refuse("row 4", 503, retry_after=0.02)  # "busy": the row was not at fault, it gets twice the tries
    out, shown = run(session, "{}", rows(6), concurrency=3, max_attempts=4)
    assert paced.by_text["row 3"] == 4 and paced.by_text["row 4"] == 8
    assert out[3].error and "HTTP 500" in out[3].error and out[3].error.endswith("(after 4 attempts)")
    assert out[4].error and "HTTP 503" in out[4].error and out[4].error.endswith("(after 8 attempts)")
    assert "2 failed" in shown.summary and "1 other reason" in shown.summary
    assert all(out[i].complete for i in (0, 1, 2, 5))


def test_a_bad_key_stops_the_batch_instead_of_failing_every_row(session: Session, paced: PacedRelay) -> None:
    paced.refuse("row", 401)
    out, shown = run(session, "{}", rows(200), concurrency=4)
    assert paced.requests <= 4  # the ones already in flight, no more
    assert "stopped: HTTP 401" in shown.summary
    assert all(isinstance(r, Reply) and r.error for r in out)
    assert sum("not sent" in (r.error or "") for r in out) >= 196


def test_a_batch_whose_first_rows_all_fail_is_stopped(session: Session, paced: PacedRelay) -> None:
    paced.refuse("row", 404)  # e.g. a wrong model name: every row would fail
    out, shown = run(session, "{}", rows(500), concurrency=4)
    assert paced.requests < 20
    assert "the first" in shown.summary and "all failed" in shown.summary
    assert len(out) == 500


def test_llmock_as_a_peer_for_the_retry_path(llmock: Any, tmp_path: Path) -> None:
    llmock.add(
        {
            "type": "fail",
            "status": 429,
            "retry_after": 0.2,
            "times": 3,
            "match": {"path": "/v1/chat/completions"},
        }
    )
    llmock.truncate(after_chunks=2)  # one stream ends early: that row is asked again
    session = Session(base_url=llmock.url, keys=KeyStore(tmp_path / "keys.json", environ={}))
    out, shown = run(session, "Describe {}", ["cats", "dogs", "owls", "bees", "ants", "elks"], concurrency=2)
    assert all(isinstance(r, Reply) and r.complete and r.error is None and r.text for r in out), out
    journal = [e for e in llmock.journal() if e["path"] == "/v1/chat/completions"]
    assert len(journal) == 6 + 3 + 1
    assert "4 retries" in shown.summary


# -- never paying twice ----------------------------------------------------------------------------------


def _interrupt_when(condition: Callable[[], bool]) -> threading.Thread:
    main = threading.main_thread().ident
    assert main is not None

    def watch() -> None:
        deadline = time.monotonic() + 20
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.005)
        signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_closes_the_streams_keeps_the_answers_and_a_rerun_sends_only_the_rest(
    session: Session, paced: PacedRelay
) -> None:
    import pandas as pd

    data = pd.Series([f"row {i}" + (" HOLD" if i >= 10 else "") for i in range(40)], index=range(100, 140))
    paced.hold, paced.hold_seconds = "HOLD", 30.0
    watcher = _interrupt_when(lambda: paced.completed >= 10 and paced.current >= 4)
    started = time.monotonic()
    with pytest.raises(BatchInterrupted) as caught:
        run(session, "{}", data, concurrency=4)
    watcher.join()
    # The four held streams were closed at once, not after their 30 s.
    assert paced.wait_closed(4, timeout=2.0)
    assert time.monotonic() - started < 10
    partial = caught.value.results
    assert isinstance(partial, pd.Series) and list(partial.index) == list(range(100, 140))
    answered = [i for i, v in enumerate(partial) if v is not None]
    assert answered == list(range(10))
    message = str(caught.value)
    assert "10 of 40 rows answered, kept in the local store" in message and "4 in flight closed" in message

    paced.hold = ""
    paced.reset()
    out, shown = run(session, "{}", data, concurrency=4)
    assert paced.requests == 30  # only the rows not answered before
    assert sorted(paced.by_text) == sorted(data.iloc[10:])
    assert list(out) == [f"echo: {t}" for t in data]
    assert "10 from the store" in shown.summary

    paced.reset()
    again, shown = run(session, "{}", data, concurrency=4)
    assert paced.requests == 0  # a second run sends none
    assert list(again) == list(out) and "40 from the store" in shown.summary


def test_a_crashed_run_resumes_from_what_it_had_stored(paced: PacedRelay, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from shenma_magic import Session
        from shenma_magic._keys import KeyStore
        keys = KeyStore(Path({str(tmp_path)!r}) / "k.json", environ={{}})
        session = Session(base_url={paced.url!r}, api_key={KEY!r}, keys=keys)
        data = [f"row {{i}}" + (" HOLD" if i >= 12 else "") for i in range(30)]
        session.map("{{}}", data, concurrency=3, progress=False)
        """
    )
    paced.hold, paced.hold_seconds = "HOLD", 60.0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        assert paced.wait_for(lambda: paced.completed >= 12 and paced.current >= 3, timeout=20)
        time.sleep(0.8)  # the child writes what it got within 0.2 s; give it that and some
    finally:
        child.kill()  # a crash: no cleanup, no flush
        child.wait()
    paced.hold = ""
    paced.reset()
    session = make_session(paced.url, tmp_path)
    data = [f"row {i}" + (" HOLD" if i >= 12 else "") for i in range(30)]
    out, _ = run(session, "{}", data, concurrency=3)
    assert paced.requests == 18
    assert [str(r) for r in out] == [f"echo: {t}" for t in data]


def test_the_store_never_holds_the_key(session: Session, paced: PacedRelay) -> None:
    out, _ = run(session, "Remember {}", [f"my key is {KEY}", "nothing here"])
    # The row that holds the key is refused before sending (its error says why); the other is answered.
    assert not out[0].complete and "holds an API key" in (out[0].error or "") and out[1].complete
    assert paced.requests == 1
    folder = Path(os.environ["XDG_DATA_HOME"]) / "shenma-magic"
    files = [p for p in folder.iterdir() if p.is_file()]
    assert files and any(p.name.endswith(".sqlite3") for p in files)
    for path in files:  # the database, its write-ahead log and shared memory
        assert KEY.encode() not in path.read_bytes(), path.name
        assert KEY[8:].encode() not in path.read_bytes(), path.name


def test_a_rerun_from_the_store_needs_no_key(session: Session, paced: PacedRelay, tmp_path: Path) -> None:
    from shenma_magic._session import MissingKeyError

    run(session, "{}", rows(3))
    elsewhere = Session(
        base_url="https://relay.example.invalid/v1", keys=KeyStore(tmp_path / "none.json", environ={})
    )
    out, shown = run(elsewhere, "{}", rows(3))  # no key, and a host that does not exist: nothing is sent
    assert [str(r) for r in out] == ["echo: row 0", "echo: row 1", "echo: row 2"]
    assert "3 from the store" in shown.summary
    with pytest.raises(MissingKeyError, match=r"no API key for relay\.example\.invalid"):
        run(elsewhere, "{}", rows(4))  # row 3 would have to be sent


def test_cache_false_sends_every_row_again(session: Session, paced: PacedRelay) -> None:
    run(session, "{}", rows(5))
    paced.reset()
    run(session, "{}", rows(5), cache=False)
    assert paced.requests == 5


def test_a_changed_option_is_a_different_request(session: Session, paced: PacedRelay) -> None:
    run(session, "{}", rows(4))
    paced.reset()
    run(session, "{}", rows(4), temperature=0.3)
    assert paced.requests == 4
    paced.reset()
    run(session, "{}", rows(4), model="deepseek-r1")
    assert paced.requests == 4


def test_a_failed_row_is_not_taken_from_the_store(session: Session, paced: PacedRelay) -> None:
    paced.refuse("row 2")
    run(session, "{}", rows(4))
    paced.refused.clear()
    paced.reset()
    out, _ = run(session, "{}", rows(4))
    assert dict(paced.by_text) == {"row 2": 1}
    assert out[2] == "echo: row 2"


# -- money -----------------------------------------------------------------------------------------------


def test_an_estimate_is_shown_before_a_priced_batch(paced: PacedRelay, tmp_path: Path) -> None:
    session = make_session(paced.url, tmp_path, prices=PRICES, max_tokens=8)
    _, shown = run(session, "Say {}", rows(20))
    assert shown.notes and shown.notes[0].startswith("estimate: ~¥")
    assert "for 20 rows" in shown.notes[0] and "≤ 8 (max_tokens)" in shown.notes[0]


def test_max_cost_stops_sending_in_time(paced: PacedRelay, tmp_path: Path) -> None:
    session = make_session(paced.url, tmp_path, prices=PRICES)
    out, shown = run(session, "Say {}", rows(100), concurrency=4, max_cost=0.1, max_tokens=8)
    answered = [r for r in out if r.complete]
    # Every answer is priced from the server's counts: 0.001 per token.
    spent = sum((r.usage["prompt_tokens"] + r.usage["completion_tokens"]) * 0.001 for r in answered)
    assert spent <= 0.1 + 1e-9
    assert spent >= 0.1 - 6 * 0.011  # it did not stop far too early either
    assert paced.requests == len(answered) < 100
    assert "stopped before max_cost ¥0.10" in shown.summary
    assert all("not sent: stopped before max_cost" in (r.error or "") for r in out if not r.complete)
    ledger = session.usage.total()
    assert ledger[0] == len(answered) and ledger[3] == pytest.approx(spent)


def test_max_cost_without_a_price_is_refused_before_anything_is_sent(
    session: Session, paced: PacedRelay
) -> None:
    with pytest.raises(ConfigError, match="max_cost needs a price for gpt-4o-mini"):
        run(session, "{}", rows(3), max_cost=1.0)
    assert paced.requests == 0


# -- pandas ----------------------------------------------------------------------------------------------


def test_a_dataframe_in_gives_a_series_with_its_index_out(session: Session, paced: PacedRelay) -> None:
    import pandas as pd

    df = pd.DataFrame(
        {"text": ["bonjour", "hola", "ciao"], "first name": ["Ann", "Bo", "Cy"]}, index=["x", "y", "z"]
    )
    out, _ = run(session, "Translate {text} for {row[first name]}", df)
    assert isinstance(out, pd.Series) and list(out.index) == ["x", "y", "z"]
    assert list(out) == [
        "echo: Translate bonjour for Ann",
        "echo: Translate hola for Bo",
        "echo: Translate ciao for Cy",
    ]


def test_a_series_in_gives_a_series_out_and_json_gives_values(session: Session, paced: PacedRelay) -> None:
    import pandas as pd

    series = pd.Series(["a", "b"], index=pd.Index([10, 20], name="id"), name="letters")
    out, _ = run(session, "Classify {}", series, json=True)
    assert isinstance(out, pd.Series) and list(out.index) == [10, 20]
    assert list(out) == [{"echo": "Classify a"}, {"echo": "Classify b"}]
    assert sorted(paced.by_text) == ["Classify a", "Classify b"]  # the JSON rule is in the system prompt


def test_a_schema_checks_each_row_and_a_bad_one_fails_alone(session: Session, paced: PacedRelay) -> None:
    schema = {"type": "object", "required": ["label"]}
    out, shown = run(session, "{}", ["x", "y"], schema=schema)
    assert all(isinstance(r, Reply) and r.error and "JSON" in r.error for r in out)
    assert shown.summary.startswith("0 done, 2 failed")


def test_pandas_is_not_imported_for_a_list(paced: PacedRelay, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import shenma_magic
        from shenma_magic._keys import KeyStore
        session = shenma_magic.Session(base_url={paced.url!r}, api_key={KEY!r},
                                       keys=KeyStore(Path({str(tmp_path)!r}) / "k.json", environ={{}}))
        out = shenma_magic.map("{{}}", ["a", "b"], session=session)
        heavy = sorted(m for m in ("pandas", "IPython", "ipywidgets", "numpy") if m in sys.modules)
        print([str(r) for r in out], heavy)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['echo: a', 'echo: b'] []"
    assert "2 done" in result.stderr  # the summary line, on stderr


# -- the public function ---------------------------------------------------------------------------------


def test_shenma_magic_map_with_the_session_s_settings(paced: PacedRelay, tmp_path: Path) -> None:
    session = make_session(paced.url, tmp_path, system="be brief", temperature=0.2)
    out = shenma_magic.map("{}", iter(["a", "b", "c"]), session=session, progress=False, seed=7)
    assert out == ["echo: a", "echo: b", "echo: c"] and isinstance(out, list)
    assert session.history == []  # rows are not part of the conversation


def test_options_that_cannot_work_are_refused_before_sending(session: Session, paced: PacedRelay) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 1000}, "concurrency"),
        ({"temperature": 5}, "temperature"),
        ({"colour": "red"}, "unknown option 'colour'"),
        ({"max_attempts": 0}, "max_attempts"),
    ]
    for options, words in bad:
        with pytest.raises(ConfigError, match=words):
            session.map("{}", ["a"], progress=False, **options)
    for data in ("a string", {"a": 1}, 42):
        with pytest.raises(ConfigError):
            session.map("{}", data, progress=False)
    with pytest.raises(ConfigError, match="does not use the row"):
        session.map("the same for everyone", ["a", "b"], progress=False)
    with pytest.raises(ConfigError, match="uses no field"):
        session.map("Translate {txt}", [{"text": "a"}], progress=False)
    assert paced.requests == 0


def test_a_template_function_that_fails_on_a_row_fails_that_row(session: Session, paced: PacedRelay) -> None:
    def prompt(row: int) -> Any:
        if row == 2:
            raise ValueError("no twos")
        if row == 3:
            return [{"role": "system", "content": "sys"}, {"role": "user", "content": "three"}]
        return f"number {row}"

    out, _ = run(session, prompt, [0, 1, 2, 3])
    assert out[0] == "echo: number 0" and out[3] == "echo: three"
    assert out[2].error and "ValueError: no twos" in out[2].error
    assert paced.requests == 3


# -- %%chat --over ---------------------------------------------------------------------------------------


def test_chat_over_fills_the_cell_per_row_and_binds_the_answers(chat_shell: Any) -> None:
    import pandas as pd

    shell = chat_shell(KEY)
    shell.user_ns["words"] = ["cat", "dog"]
    shell.user_ns["lang"] = "French"
    shell.run_cell_magic("chat", "--over words -o out --concurrency 2", "Translate {} to {lang}\n")
    assert shell.user_ns["out"] == ["echo: Translate cat to French", "echo: Translate dog to French"]

    # A row's field wins over a notebook variable of the same name.
    shell.user_ns["df"] = pd.DataFrame({"word": ["sun"], "lang": ["German"]}, index=["k"])
    shell.run_cell_magic("chat", "--over df -o out2 --json", "Translate {word} to {lang}")
    assert list(shell.user_ns["out2"]) == [{"echo": "Translate sun to German"}]
    assert list(shell.user_ns["out2"].index) == ["k"]


def test_map_in_a_notebook_uses_the_notebook_s_session_as_configured(chat_shell: Any, relay: Any) -> None:
    from shenma_magic._session import current_session

    shell = chat_shell(KEY)
    shell.run_line_magic("config", "ChatMagics.model = 'deepseek-r1'")
    shell.run_line_magic("config", 'ChatMagics.prices = {"deepseek-*": {"input": 1000, "output": 1000}}')
    out = shenma_magic.map("{}", ["a", "b"], progress=False, concurrency=2)
    assert out == ["echo: a", "echo: b"]
    assert [r.json["model"] for r in relay.chat_requests] == ["deepseek-r1", "deepseek-r1"]
    session = current_session()
    assert session is not None
    row, *_ = session.usage.rows()
    model, calls, cost = row.model, row.calls, row.cost
    assert (model, calls) == ("deepseek-r1", 2) and cost is not None and cost > 0
    assert shenma_magic.map("{}", [], progress=False) == []


def test_chat_over_refuses_what_does_not_combine(chat_shell: Any) -> None:
    from IPython.core.error import UsageError

    shell = chat_shell(KEY)
    shell.user_ns["words"] = ["cat"]
    with pytest.raises(UsageError, match="no such variable"):
        shell.run_cell_magic("chat", "--over nothing -o out", "{}")
    with pytest.raises(UsageError, match="--image does not combine"):
        shell.run_cell_magic("chat", "--over words --image x.png", "{}")
    with pytest.raises(UsageError, match="goes with --over"):
        shell.run_cell_magic("chat", "--concurrency 4", "hello")
    with pytest.raises(UsageError, match="does not use the row"):
        shell.run_cell_magic("chat", "--over words -o out", "hello")


@pytest.mark.slow
def test_in_jupyter_one_bar_for_the_whole_batch_then_the_summary(paced: PacedRelay, tmp_path: Path) -> None:
    from jupyter_client.manager import start_new_kernel

    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "SHENMA_BASE_URL": paced.url,
        "SHENMA_API_KEY": KEY,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    paced.latency = 0.1
    manager, client = start_new_kernel(kernel_name="python3", env=env)
    try:

        def run_cell(code: str) -> list[dict[str, Any]]:
            messages: list[dict[str, Any]] = []
            reply = client.execute_interactive(code, output_hook=messages.append, timeout=120)
            assert reply["content"]["status"] == "ok", reply["content"]
            return messages

        run_cell("%load_ext shenma_magic")
        run_cell("small = [f'row {i}' for i in range(4)]\nbig = [f'row {i}' for i in range(80)]")
        counts = {}
        for name in ("small", "big"):
            messages = run_cell(f"%%chat --over {name} -o out_{name} --concurrency 4\nSay {{}}")
            # No widget (a comm would make JupyterLab show the kernel Idle): one display, updated in place.
            assert not [m for m in messages if m["msg_type"].startswith("comm_")]
            opened = [m for m in messages if m["msg_type"] == "display_data"]
            updates = [m for m in messages if m["msg_type"] == "update_display_data"]
            counts[name] = (len(opened), len(updates))
            bar = opened[0]["content"]
            assert "<progress" in bar["data"]["text/html"] and bar["transient"]["display_id"]
            assert {m["content"]["transient"]["display_id"] for m in updates} <= {
                bar["transient"]["display_id"]
            }
            last = updates[-1]["content"]["data"]
            # The live bar was replaced by the summary: a saved notebook keeps text.
            rows = 4 if name == "small" else 80
            assert last["text/plain"].startswith(f"{rows} done")
        # One bar for 4 rows and for 80: one for the batch, none per row.
        assert counts["small"][0] == counts["big"][0] == 1
        assert counts["big"][1] < 80  # and far fewer updates than rows (at most 4 a second)
        check = run_cell("print(len(out_big), out_big[79])")
        printed = "".join(m["content"].get("text", "") for m in check if m["msg_type"] == "stream")
        assert printed.strip() == "80 echo: Say row 79"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
