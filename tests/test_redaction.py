"""Masking: no run of 10 consecutive characters of a known key appears, whatever cuts or splits it.

The oracle is deliberately naive (every 10-character window of the key, searched in the output), so it
shares nothing with the matcher it checks.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from shenma_magic._secret import (
    KeyMatcher,
    StreamRedactor,
    excerpt,
    header_problem,
    looks_like_key,
    mask,
    redact,
)

KEY = "sk-TESTKEY0123456789abcdefSECRET9f3a"
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def shows_run(text: str, key: str, run: int = 10) -> bool:
    """Does ``text`` show ``run`` consecutive characters of ``key``?"""
    run = min(run, len(key))
    return any(key[i : i + run] in text for i in range(len(key) - run + 1))


realistic_keys = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["sk-", "sk-proj-", "ak-", "", "key_"]),
    st.text(alphabet=ALNUM + "-_", min_size=16, max_size=120),
)
# Keys with few distinct characters repeat themselves: the hardest case for any matcher.
odd_keys = st.text(alphabet="ab-1 \t", min_size=10, max_size=60)
keys = st.one_of(realistic_keys, odd_keys)
noise = st.text(alphabet=ALNUM + " \n\t.,:;-_/\"'{}[]中文", max_size=80)


@st.composite
def text_with_key(draw: st.DrawFn) -> tuple[str, str]:
    """A key, and a text holding it (or a piece of it) among noise, maybe more than once."""
    key = draw(keys)
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        parts.append(draw(noise))
        start = draw(st.integers(0, max(len(key) - 10, 0)))
        end = draw(st.integers(min(start + 10, len(key)), len(key)))
        parts.append(key[start:end])
    parts.append(draw(noise))
    return key, "".join(parts)


# ------------------------------------------------------------------------------------------- redact()


@pytest.mark.parametrize(
    "text",
    [
        f"bad key {KEY}!",
        f"cut at 300 chars: {KEY[:-1]}",
        f"{KEY[5:25]} a middle piece",
        f"twice {KEY} and {KEY}",
        f"glued{KEY}{KEY}glued",
        f'json "{KEY}" and url ?key={KEY}&x=1',
        f"{KEY[:12]}…{KEY[12:]}",  # a cut with an ellipsis inside: two runs, both masked
    ],
)
def test_redact_masks_every_run(text: str) -> None:
    out = redact(text, KEY)
    assert not shows_run(out, KEY)
    assert mask(KEY) in out


def test_keys_with_whitespace_and_very_long_tokens() -> None:
    spaced = "sk-abc def\tghi jklmnopqrstu vwxyz"
    assert not shows_run(redact(f"echo: {spaced} end", spaced), spaced)
    # whitespace collapsing (excerpt) must not let a spaced key through either
    assert not shows_run(excerpt(f"echo: {spaced}", 200, keys=[spaced]), spaced)
    long_token = "eyJ" + "Qk9" * 300 + "xyz"  # a JWT-sized token
    out = redact(f"token={long_token[100:400]};", long_token)
    assert not shows_run(out, long_token)


def test_short_keys_and_no_keys_leave_text_alone() -> None:
    text = "the word secret and abc"
    assert redact(text, "secret") == text  # too short to be a key: never masks ordinary words
    assert redact(text) == text
    assert redact(text, None, "") == text


def test_unknown_key_shapes_are_masked_too() -> None:
    other = "sk-OTHERKEY00000000000000000000XYZW"
    assert other not in redact(f"a key we never saw: {other}")


@settings(max_examples=400, deadline=None)
@given(text_with_key())
@example(("sk-aaaaaaaaaaaaaaaaaaaa", "sk-aaaaaaaaaaaaaaaaaaaaaaaaa"))
def test_redact_property(case: tuple[str, str]) -> None:
    key, text = case
    out = redact(text, key)
    assert not shows_run(out, key)


@settings(max_examples=400, deadline=None)
@given(noise, keys)
def test_text_without_a_key_is_untouched(text: str, key: str) -> None:
    assume(not shows_run(text, key) and "sk-" not in text)
    assert KeyMatcher([key]).mask(text) == text


# -------------------------------------------------------------------------------- excerpt(): every cut


@settings(max_examples=150, deadline=None)
@given(text_with_key())
def test_excerpt_masks_before_cutting_at_every_limit(case: tuple[str, str]) -> None:
    key, text = case
    for limit in range(1, len(text) + 2):
        out = excerpt(text, limit, keys=[key])
        assert len(out) <= max(limit, 1)
        assert not shows_run(out, key), (limit, out)


def test_excerpt_of_a_key_at_the_cut() -> None:
    # The case of issue 8.6: 38 of 39 characters showed when the key sat at the cut.
    for limit in range(1, 130):
        body = "x" * 80 + KEY + " tail"
        assert not shows_run(excerpt(body, limit, keys=[KEY]), KEY)


# ---------------------------------------------------------------------------- StreamRedactor: any split


def run_stream(key_list: list[str], pieces: list[str]) -> tuple[str, list[str]]:
    redactor = StreamRedactor(KeyMatcher(key_list))
    out = [redactor.feed(p) for p in pieces]
    out.append(redactor.flush())
    return "".join(out), out


def split_at(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=400, deadline=None)
@given(text_with_key(), st.lists(st.integers(0, 10_000), max_size=30))
def test_a_key_split_across_deltas_is_still_masked(case: tuple[str, str], cuts: list[int]) -> None:
    key, text = case
    joined, _ = run_stream([key], split_at(text, cuts))
    assert not shows_run(joined, key)


@settings(max_examples=300, deadline=None)
@given(text_with_key())
def test_one_character_deltas(case: tuple[str, str]) -> None:
    key, text = case
    joined, _ = run_stream([key], list(text))
    assert not shows_run(joined, key)


@settings(max_examples=300, deadline=None)
@given(noise, realistic_keys, st.lists(st.integers(0, 10_000), max_size=20))
def test_text_without_a_key_streams_through_unchanged(text: str, key: str, cuts: list[int]) -> None:
    assume(not shows_run(text, key))
    joined, _ = run_stream([key], split_at(text, cuts))
    assert joined == text


def test_hold_back_is_short_for_ordinary_text() -> None:
    redactor = StreamRedactor(KeyMatcher([KEY]))
    shown = [redactor.feed(word) for word in ["Hello ", "world, ", "这是", "答案。"]]
    assert shown == ["Hello ", "world, ", "这是", "答案。"]  # nothing that could start a key is held
    held = redactor.feed("the end")  # "d" is in KEY: held until more text proves it is no key
    assert held == "the en" and redactor.flush() == "d"


def test_several_keys_and_a_key_split_in_two() -> None:
    other = "ak-ZZZZZZZZ1111111111YYYYYYYYY"
    text = f"one {KEY} two {other} three"
    joined, _ = run_stream([KEY, other], [text[:20], text[20:47], text[47:]])
    assert not shows_run(joined, KEY) and not shows_run(joined, other)
    assert joined == f"one {mask(KEY)} two {mask(other)} three"


# --------------------------------------------------------------------------------------- header_problem


@pytest.mark.parametrize(
    ("key", "what"),
    [
        ("sk-abc\u200bdefghijklmnop", "invisible"),
        ("sk-ａｂｃdefghijklmnop", "non-ASCII"),
        ("sk-abc defghijklmnop", "space"),
        ("sk-abc\tdefghijklmnop", "space"),
        ("sk-abc\ndefghijklmnop", "line break"),
        ("sk-abc\x00defghijklmnop", "invisible"),
        ("sk-abc\x7fdefghijklmnop", "invisible"),
        ("sk-abcédefghijklmnop", "non-ASCII"),
        ("sk-abc😀defghijklmnop", "non-ASCII"),
        ("sk-abc\u00a0defghijklmnop", "invisible"),
    ],
)
def test_header_problem_names_the_character_never_the_key(key: str, what: str) -> None:
    problem = header_problem(key)
    assert problem is not None and what in problem
    assert "abc" not in problem and "defghij" not in problem
    first_bad = next(i for i, c in enumerate(key) if not "!" <= c <= "~")
    assert f"position {first_bad + 1}" in problem


def test_visible_ascii_keys_have_no_header_problem() -> None:
    assert header_problem(KEY) is None
    assert header_problem("sk-" + "".join(chr(c) for c in range(0x21, 0x7F))) is None


# ------------------------------------------------------------------- invisible characters inside a key

# A hostile echo may put characters a reader never sees between a key's characters: the key still reads
# whole (and copies whole), so it is masked whole, the invisible characters with it.
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\r", "\b", "\x1b[1m"]
INVISIBLE.append("\x1b]0;t\x07")


def as_read(text: str) -> str:
    """What a reader sees of ``text``: the invisible characters and sequences gone."""
    for junk in sorted(INVISIBLE, key=len, reverse=True):
        text = text.replace(junk, "")
    return text


@pytest.mark.parametrize("junk", INVISIBLE, ids=[repr(j) for j in INVISIBLE])
@pytest.mark.parametrize("every", [1, 3, 9])
def test_invisible_characters_inside_a_key_do_not_hide_it(junk: str, every: int) -> None:
    hidden = "".join(c + junk if i % every == every - 1 else c for i, c in enumerate(KEY))
    text = f"your key: {hidden}, keep it"
    outputs = {
        "redact": redact(text, KEY),
        "excerpt": excerpt(text, 200, keys=[KEY]),
        "stream": run_stream([KEY], split_at(text, [7, 15, 16, 30, 31, 44]))[0],
        "one character at a time": run_stream([KEY], list(text))[0],
    }
    for where, out in outputs.items():
        assert not shows_run(as_read(out), KEY), (where, out)
        assert mask(KEY) in out and "keep it" in out, (where, out)
    after = junk if len(KEY) % every == 0 else ""  # one after the key's last character stays outside
    assert redact(text, KEY) == f"your key: {mask(KEY)}{after}, keep it"


@pytest.mark.parametrize("junk", ["\u200b", "\u00ad", "\ufeff", "\u2060"])
def test_an_unknown_key_shape_with_zero_width_characters_is_masked(junk: str) -> None:
    other = "sk-OTHERKEY00000000000000000000XYZW"
    hidden = junk.join(other)
    assert looks_like_key(hidden)
    out = redact(f"a key we never saw: {hidden}.")
    assert out == "a key we never saw: sk-…XYZW."


def test_ordinary_text_with_invisible_characters_is_untouched() -> None:
    for text in ["soft\u00adhyphen", "a\u200bb", "line\r\nnext", "\x1b[1mbold\x1b[0m", "表\u200d情"]:
        assert redact(text, KEY) == text
        assert run_stream([KEY], list(text))[0] == text


def test_an_escape_sequence_cut_between_deltas_still_hides_nothing() -> None:
    text = f"hi {KEY[:9]}\x1b[31m{KEY[9:]} end"
    start = text.index("\x1b")
    for cut in range(start, start + 6):
        joined, _ = run_stream([KEY], [text[:cut], text[cut:]])
        assert joined == f"hi {mask(KEY)} end", (cut, joined)


def test_invisible_characters_piling_up_after_a_key_prefix_are_let_go_in_bounded_pieces() -> None:
    redactor = StreamRedactor(KeyMatcher([KEY]))
    shown = [redactor.feed(KEY[:5])] + [redactor.feed("\u200b") for _ in range(2000)]
    assert sum(map(len, shown)) > 1500  # not all held until the end
    rest = redactor.feed(KEY[5:] + " end") + redactor.flush()
    assert not shows_run(as_read("".join(shown) + rest), KEY)


noise_with_invisible = st.text(alphabet=ALNUM + " \n.,-中文\r\b\x1b[]\u200b\u00ad\ufeff\x9b", max_size=80)


@settings(max_examples=300, deadline=None)
@given(noise_with_invisible, realistic_keys, st.lists(st.integers(0, 10_000), max_size=20))
def test_text_with_invisible_characters_but_no_key_streams_through_unchanged(
    text: str, key: str, cuts: list[int]
) -> None:
    assume(not shows_run(as_read(text), key) and not shows_run(text, key))
    joined, _ = run_stream([key], split_at(text, cuts))
    assert joined == text
