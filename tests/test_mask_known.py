"""Keys a live session knows never reach a screen, however the text disguised them for the renderer.

The client masks what a server sends, but text with no 10-character run of a key can still become one
when it is rendered: character references, a percent-encoded autolink, a ``\\r`` the terminal view drops.
So every renderer's output is masked again with the keys of every live session (``_secret.mask_known``).
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._markdown import code_block_html, escape_text, render_html, render_json_html, tool_call_html
from shenma_magic._mdsafe import markdown_code_span, markdown_text, safe_markdown, tool_call_markdown
from shenma_magic._secret import excerpt, mask_known, register_key_source
from shenma_magic._session import Session
from shenma_magic._termtext import terminal_safe

KEY = "sk-MASKTEST0123456789abcdefghijklmn"
BARE = KEY[3:]


def shows_run(text: str, key: str = KEY, run: int = 10) -> bool:
    return any(key[i : i + run] in text for i in range(len(key) - run + 1))


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Session:
    for var in ("SHENMA_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    return Session(base_url="http://127.0.0.1:9/v1", api_key=KEY, log=False)


def _every(step: int, wrap: Callable[[str], str], key: str) -> str:
    return "".join(wrap(c) if i % step == 0 else c for i, c in enumerate(key))


def _disguises(key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for step in (3, 5, 8, 9):
        out[f"dec entity /{step}"] = _every(step, lambda c: f"&#{ord(c)};", key)
        out[f"hex entity /{step}"] = _every(step, lambda c: f"&#x{ord(c):X};", key)
        out[f"autolink %XX /{step}"] = (
            "<http://x.example/" + _every(step, lambda c: f"%{ord(c):02X}", key) + ">"
        )
        out[f"cr /{step}"] = "\r".join(key[i : i + step] for i in range(0, len(key), step))
    out["named entity"] = key.replace("-", "&#45;")
    return out


RENDERERS: dict[str, Callable[[str], str]] = {
    "render_html": render_html,
    "safe_markdown": safe_markdown,
    "terminal_safe": terminal_safe,
    "escape_text": escape_text,
    "render_json_html": lambda t: render_json_html('{"k": "' + t + '"}'),
    "code_block_html": code_block_html,
    "tool_call_html": lambda t: tool_call_html(t, '{"q": "' + t + '"}'),
    "tool_call_markdown": lambda t: tool_call_markdown(t, '{"q": "' + t + '"}'),
    "markdown_text": markdown_text,
    "markdown_code_span": markdown_code_span,
    "excerpt": excerpt,
}


@pytest.mark.parametrize("key", [KEY, BARE, "rk_MASK_TEST_0123-4567-89ab_cdef"])
@pytest.mark.parametrize("renderer", sorted(RENDERERS))
def test_no_disguise_rebuilds_a_key(
    renderer: str, key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for var in ("SHENMA_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    s = Session(base_url="http://127.0.0.1:9/v1", api_key=key, log=False)
    for name, text in {"plain": key, **_disguises(key)}.items():
        for framed in (text, f"Your key: {text} end", f"- item\n\n> {text}\n", f"| a |\n|---|\n| {text} |"):
            out = RENDERERS[renderer](framed)
            assert not shows_run(out, key), (renderer, name, out)
    del s


@settings(max_examples=150, deadline=None)
@given(
    step=st.integers(1, 12),
    how=st.sampled_from(["dec", "hex", "pct", "cr"]),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_disguise_property(step: int, how: str, before: str, after: str) -> None:
    holder = _Holder()
    register_key_source(holder.keys)
    wrap = {
        "dec": lambda c: f"&#{ord(c)};",
        "hex": lambda c: f"&#x{ord(c):x};",
        "pct": lambda c: f"%{ord(c):02X}",
        "cr": lambda c: c + "\r",
    }[how]
    body = _every(step, wrap, KEY)
    text = before + (f"<http://x.example/{body}>" if how == "pct" else body) + after
    for name in ("render_html", "safe_markdown", "terminal_safe"):
        out = RENDERERS[name](text)
        assert not shows_run(out), (name, out)


class _Holder:
    def keys(self) -> list[str]:
        return [KEY]


def test_a_source_goes_with_its_object(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SHENMA_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    other = "sk-GONEAWAYqwertyuiopASDFGHJKLzxcv"  # shares no 10-run with other tests' keys

    # A bound method is held weakly: the object dies, its keys are no longer masked.
    class Owner:
        def keys(self) -> list[str]:
            return [other]

    owner = Owner()
    register_key_source(owner.keys)
    assert not shows_run(mask_known(other), other)
    del owner
    gc.collect()
    assert mask_known(other) == other


def test_a_failing_source_does_not_stop_masking(session: Session) -> None:
    class Broken:
        def keys(self) -> list[str]:
            raise OSError("unreadable")

    broken = Broken()
    register_key_source(broken.keys)
    assert not shows_run(render_html(_every(4, lambda c: f"&#{ord(c)};", KEY)))
    del broken


def test_environment_keys_are_known_without_a_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHENMA_API_KEY", "sk-ENVONLY0123456789abcdefghijkl")
    out = render_html(_every(5, lambda c: f"&#{ord(c)};", "sk-ENVONLY0123456789abcdefghijkl"))
    assert not shows_run(out, "sk-ENVONLY0123456789abcdefghijkl")


def test_text_without_a_key_is_unchanged(session: Session) -> None:
    text = "周树人 **bold** `code` <http://x.example/%41b> \r\n"
    assert mask_known(text) == text
