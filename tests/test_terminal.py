"""The terminal view: outside control characters never reach the terminal; tables and code read well."""

from __future__ import annotations

import io
import itertools
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic import ChatClient
from shenma_magic._display import TextView as ReExported
from shenma_magic._models import NoticeDelta, ReasoningDelta, Reply, TextDelta
from shenma_magic._secret import KeyMatcher, StreamRedactor
from shenma_magic._terminal import TextView
from shenma_magic._termtext import TerminalBlocks, align_table, display_width, terminal_safe
from tests.relay import Relay, Scripted, stream_of


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


# The package's own styling: SGR with these parameters only (dim, bold, italic, underline, colours,
# resets). Conceal (8), blink (5, 6) or anything else would come from outside.
_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_OWN = {
    "",
    "0",
    "1",
    "2",
    "3",
    "4",
    "22",
    "23",
    "24",
    "39",
    *map(str, range(30, 38)),
    *map(str, range(90, 98)),
}
_FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def assert_only_own_sequences(written: str) -> None:
    for match in _SGR.finditer(written):
        assert set(match.group(1).split(";")) <= _OWN, match.group(0)
    rest = _SGR.sub("", written)
    bad = _FORBIDDEN.search(rest)
    assert bad is None, (bad.group(0) if bad else "", rest)
    written.encode("utf-8")  # nothing a stream cannot carry (lone surrogates)


HOSTILE = [
    "\x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07",  # OSC 52: write the clipboard
    "\x1b]52;c;ZXZpbA==\x1b\\",
    "\x1b]0;owned title\x07",
    "\x1b]2;title\x1b\\",
    "\x1b[8m",  # conceal: hid "finish: length"
    "\x1b[2J\x1b[H",
    "\x1b[1A\x1b[2K",
    "\x1b[?1049h",
    "\x1bc",
    "\x1b[6n",
    "\r",
    "safe\rrm -rf ~",
    "\b\b\b",
    "\x07",
    "\x9b31m",  # 8-bit CSI
    "\x9d0;t\x9c",  # 8-bit OSC
    "\x85\x8d",
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE
    "\u2066\u2067\u2068\u2069",
    "\u202a\u202b\u202c\u202d",
    "\ud83d",  # half of a surrogate pair
    "\x00\x7f",
]
MARKDOWN = [
    "```python\n",
    "```\n",
    "~~~\n",
    "| a | 值 |\n",
    "|---|:-:|\n",
    "| 中文 | x |\n",
    "\n",
    "  ",
    "`",
    "|",
]


@pytest.mark.parametrize("attack", HOSTILE)
@pytest.mark.parametrize("where", ["text", "reasoning", "notice", "status", "error", "code", "table"])
def test_no_outside_control_reaches_the_terminal(attack: str, where: str) -> None:
    out = TTY()
    view = TextView(out)
    text = f"before {attack} after"
    if where == "reasoning":
        view.on_delta(ReasoningDelta(text))
    elif where == "notice":
        view.on_delta(NoticeDelta(text))
    elif where == "code":
        view.on_delta(TextDelta(f"```python\nx = '{attack}'\n```\n"))
    elif where == "table":
        view.on_delta(TextDelta(f"| a | b |\n|---|---|\n| {attack} | 1 |\n"))
    elif where == "text":
        view.on_delta(TextDelta(text))
    status = f"model{attack} · finish: length" if where == "status" else "model · finish: length"
    view.finish(Reply(text="x", error=text if where == "error" else None), status)
    written = out.getvalue()
    assert_only_own_sequences(written)
    assert "finish: length" in written


_TEXT = st.one_of(st.text(max_size=20), st.sampled_from(HOSTILE), st.sampled_from(MARKDOWN))


@settings(max_examples=400, deadline=None)
@given(
    deltas=st.lists(
        st.tuples(st.sampled_from(["text", "text", "text", "reasoning", "notice"]), _TEXT), max_size=25
    ),
    status=st.text(max_size=20),
    error=st.none() | st.text(max_size=20),
    tty=st.booleans(),
)
def test_any_server_text_writes_only_the_packages_own_sequences(
    deltas: list[tuple[str, str]], status: str, error: str | None, tty: bool
) -> None:
    out: io.StringIO = TTY() if tty else io.StringIO()
    view = TextView(out)
    kinds: dict[str, Any] = {"text": TextDelta, "reasoning": ReasoningDelta, "notice": NoticeDelta}
    for kind, text in deltas:
        view.on_delta(kinds[kind](text))
    view.finish(Reply(text="", error=error), status)
    written = out.getvalue()
    assert_only_own_sequences(written)
    if not tty:
        assert "\x1b" not in written


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(MARKDOWN + HOSTILE + [" ", "-", "*"]), st.just("WORD")), max_size=40)
)
def test_every_word_reaches_the_terminal_in_order(parts: list[str]) -> None:
    words: list[str] = []
    text_parts = []
    for part in parts:
        if part == "WORD":
            words.append(f"w{len(words)}k")
            text_parts.append(words[-1])
        else:
            text_parts.append(part)
    text = "".join(text_parts)
    for tty in (False, True):
        out: io.StringIO = TTY() if tty else io.StringIO()
        view = TextView(out)
        for i in range(0, len(text), 5):
            view.on_delta(TextDelta(text[i : i + 5]))
        view.finish(Reply(text=text), "status")
        assert re.findall(r"w\d+k", _SGR.sub("", out.getvalue())) == words


def test_prose_streams_as_it_arrives_and_a_table_waits_for_its_end() -> None:
    out = TTY()
    view = TextView(out)
    view.on_delta(TextDelta("Hello wor"))
    assert out.getvalue() == "Hello wor"
    view.on_delta(TextDelta("ld\n\n| a | b |\n|---|---|\n| 1 | 2"))
    assert out.getvalue() == "Hello world\n\n"
    view.on_delta(TextDelta(" |\n\nafter"))
    assert out.getvalue().endswith("| 1   | 2   |\n\nafter")


def test_tables_align_with_wide_characters_counted_twice() -> None:
    rows = align_table(
        ["| 名前 | n | note |", "|:--|--:|:-:|", "| 中文名字 | 1 | ok |", "| a | 12345 | é |", "| x |"]
    )
    assert rows is not None
    widths = {display_width(row) for row in rows}
    assert len(widths) == 1, rows  # every line is as wide as the others, on screen
    assert rows[1].split("|")[1].strip().startswith(":")  # left kept explicit
    assert rows[1].split("|")[2].strip().endswith(":") and not rows[1].split("|")[2].strip().startswith(":")
    cells = [c for c in rows[3].split("|")[1:-1]]
    assert cells[1] == " 12345 " and cells[0].startswith(" a ")
    assert align_table(["| not | a table |", "| just | pipes |"]) is None


@pytest.mark.parametrize(
    ("char", "width"), [("a", 1), ("中", 2), ("ｱ", 1), ("Ａ", 2), ("é", 1), ("\u0301", 0)]
)
def test_display_width(char: str, width: int) -> None:
    assert display_width(char) == width


def test_code_is_coloured_on_a_tty_and_plain_otherwise() -> None:
    source = "Look:\n```python\ndef f():\n    return 1\n```\ndone\n"
    plain = io.StringIO()
    TextView(plain).on_delta(TextDelta(source))
    assert plain.getvalue() == source
    tty = TTY()
    view = TextView(tty)
    view.on_delta(TextDelta(source))
    written = tty.getvalue()
    assert _SGR.sub("", written) == source  # the same text, with colour added
    code_part = written.split("```python")[1]
    assert _SGR.search(code_part.split("```")[0]) is not None


def test_unclosed_fence_and_table_at_the_end_are_written_by_finish() -> None:
    for source in ("```python\nx = 1", "| a | b |\n|---|---|\n| 1 | 2 |"):
        out = TTY()
        view = TextView(out)
        view.on_delta(TextDelta(source))
        view.finish(Reply(text=source), "done")
        assert "1" in _SGR.sub("", out.getvalue()) and out.getvalue().rstrip().endswith("[done]\x1b[0m")


def test_terminal_safe_marks_controls_visibly() -> None:
    assert terminal_safe("a\x1b[8mb") == "a␛[8mb"
    assert terminal_safe("x\r\ny\rz") == "x\nyz"
    assert terminal_safe("\u202eabc") == "<U+202E>abc"
    assert terminal_safe("\x9b") == "<U+009B>"
    assert terminal_safe("tab\tand\nnewline 中文") == "tab\tand\nnewline 中文"


def test_text_view_keeps_its_constructor_and_is_reexported() -> None:
    assert ReExported is TextView
    out = io.StringIO()
    view = TextView(out)
    view.on_delta(TextDelta("hi"))
    view.finish(Reply(text="hi"), "s")
    assert out.getvalue() == "hi\n[s]\n"


def test_a_stream_that_cannot_encode_everything_still_gets_the_answer() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    view = TextView(stream)
    view.on_delta(TextDelta("中文 and text\n"))
    view.finish(Reply(text="x"), "done")
    stream.flush()
    assert b"and text" in raw.getvalue() and b"[done]" in raw.getvalue()


def test_blocks_state_machine_is_pure_and_complete() -> None:
    blocks = TerminalBlocks(tty=False)
    text = "a\n\n    indented | not a table\n  | t | u |\n  |---|---|\nend"
    out = "".join(blocks.feed(ch) for ch in text) + blocks.finish()
    assert re.sub(r"[\s|-]", "", out) == re.sub(r"[\s|-]", "", text)


# -- a key among characters the terminal view drops or shows as marks ----------------------------------

# Keys of letters and digits that none of the inserted sequences, the view's own words ("[reasoning]",
# the status) or the filler use, so any two consecutive key characters on screen come from the key.
_KEY_BODY = "CDEFGHIJLNOPQRSTVWXYZ3467"  # no "U", "9", "B": the view shows 0x9B as <U+009B>
_JUNK = ["\r", "\b", "\r\r", "\x1b[1m", "\x1b[2K", "\x1b[8m", "\x1b]0;t\x07", "\x1b[?25l", "\x1bc", "\x9b2J"]
_FILLER = st.text(alphabet=" .,!\n你好中文", max_size=12)


def _two_in_a_row(written: str, key: str) -> list[str]:
    """The pairs of consecutive key characters in ``written``, the mask (``sk-…WXYZ``) left out."""
    rest = written.replace(f"sk-…{key[-4:]}", " ").replace("…", " ")
    return [key[i : i + 2] for i in range(len(key) - 1) if key[i : i + 2] in rest]


@st.composite
def _keyed_stream(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A key, and a text holding it whole with control characters and escape sequences between its
    characters, cut into deltas anywhere."""
    key = "sk-" + draw(st.text(alphabet=_KEY_BODY, min_size=16, max_size=40))
    chars = []
    for ch in key:
        chars.append(ch)
        chars.extend(draw(st.lists(st.sampled_from(_JUNK), max_size=2)))
    text = draw(_FILLER) + "".join(chars) + draw(_FILLER)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=12))))
    points = [0, *cuts, len(text)]
    return key, [text[a:b] for a, b in itertools.pairwise(points) if b > a]


@settings(max_examples=300, deadline=None)
@given(case=_keyed_stream(), kind=st.sampled_from(["text", "reasoning"]), tty=st.booleans())
def test_a_key_among_dropped_characters_never_shows_two_of_its_characters(
    case: tuple[str, list[str]], kind: str, tty: bool
) -> None:
    key, pieces = case
    redactor = StreamRedactor(KeyMatcher([key]))  # what the client does to every streamed field
    out: io.StringIO = TTY() if tty else io.StringIO()
    view = TextView(out)
    make = TextDelta if kind == "text" else ReasoningDelta
    for piece in [*(redactor.feed(p) for p in pieces), redactor.flush()]:
        view.on_delta(make(piece))
    view.finish(Reply(text=""), "done")
    written = out.getvalue()
    assert _two_in_a_row(written, key) == [], written
    assert f"sk-…{key[-4:]}" in written  # the key is still there, as its mask


# -- the order of reasoning and answer ---------------------------------------------------------------------

_ORDER_KEY = "sk-ORDERKEY0123456789abcdefghijkl"


@pytest.mark.parametrize(
    ("reasoning", "answer", "shown"),
    [
        # "s" may start a key: the redactor holds it until the answer text shows it cannot.
        (["Let me think about s"], ["The answer."], ("Let me think about s", "The answer.")),
        (
            ["Thinking", " about sk-ORD"],
            ["The answer", " is 42."],
            ("Thinking about sk-ORD", "The answer is 42."),
        ),
        (["Check ", "the 0123"], ["Done: ", "ok"], ("Check the 0123", "Done: ok")),
        # A key split across the two fields: each part masked where it stands.
        (
            [f"The key {_ORDER_KEY[:20]}"],
            [f"{_ORDER_KEY[20:]} is it."],
            ("The key sk-…ijkl", "sk-…ijkl is it."),
        ),
    ],
)
def test_reasoning_held_back_by_the_redactor_comes_before_the_answer(
    relay: Relay, reasoning: list[str], answer: list[str], shown: tuple[str, str]
) -> None:
    relay.enqueue(Scripted(chunks=stream_of(answer, reasoning=reasoning)))
    client = ChatClient(relay.url, _ORDER_KEY, max_retries=0)
    out = io.StringIO()
    view = TextView(out)
    with client.stream([{"role": "user", "content": "hi"}]) as stream:
        for delta in stream:
            view.on_delta(delta)
    view.finish(Reply(text=""), "done")
    assert out.getvalue() == f"[reasoning] {shown[0]}\n\n{shown[1]}\n[done]\n"
