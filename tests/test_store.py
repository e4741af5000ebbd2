"""The local log (shenma_magic._store): real files, real processes, and the file's bytes read back."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shenma_magic._exchange import replay_deltas
from shenma_magic._keys import KeyStore
from shenma_magic._models import Reply, ReplyBuilder
from shenma_magic._store import (
    SCHEMA_VERSION,
    Exchange,
    Store,
    StoreError,
    request_key,
    store_path,
)

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-STORETESTkey0123456789abcdefXYZ42"
# A known key that is not shaped like one, with characters JSON escapes: only the known-key mask finds it.
ODD_KEY = 'tok"en\\with/odd+chars=7Qz9!'
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    + b"UNIQUE-IMAGE-PAYLOAD-" * 40  # under a page, so each copy of it is one run of bytes in the file
)


def data_url(data: bytes = PNG, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_message(text: str, data: bytes = PNG) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": data_url(data)}},
        ],
    }


def ex(notebook: str = "/nb/a.ipynb", prompt: str = "hello", reply: str = "hi", **fields: Any) -> Exchange:
    fields.setdefault("messages", [{"role": "user", "content": prompt}])
    fields.setdefault("host", "api.whatai.cc")
    fields.setdefault("model", "gpt-4o-mini")
    fields.setdefault("finish_reason", "stop")
    fields.setdefault("complete", True)
    return Exchange(notebook=notebook, reply=reply, **fields)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "shenma-magic" / "log.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    with Store(path, known_keys=lambda: [KEY, ODD_KEY]) as s:
        yield s


def file_bytes(path: Path) -> bytes:
    """The database and its -wal and -shm files, as they are on disk."""
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


def runs(secret: str, n: int = 10) -> list[bytes]:
    return [secret[i : i + n].encode() for i in range(len(secret) - n + 1)]


def assert_no_trace(path: Path, *secrets: str) -> None:
    blob = file_bytes(path)
    for secret in secrets:
        for run in runs(secret):
            assert run not in blob, f"{run!r} of a secret is in the log file"


# -- round trip ----------------------------------------------------------------------------------------


def test_record_and_read_back_every_field(store: Store) -> None:
    when = datetime(2026, 11, 3, 12, 30, tzinfo=timezone.utc)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}]
    first = store.record(
        Exchange(
            notebook="/nb/a.ipynb",
            host="api.whatai.cc",
            model="gpt-4o-mini-2024",
            requested_model="gpt-4o-mini",
            messages=messages,
            reply="4",
            reasoning="adding",
            tool_calls=[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            finish_reason="stop",
            usage={"prompt_tokens": 9, "completion_tokens": 1},
            prompt_tokens=9,
            completion_tokens=1,
            cost=0.5,
            cost_estimated=False,
            currency="¥",
            complete=True,
            request_key="k1",
            conversation="c-1",
            branch="",
            turn=0,
            time=when,
        )
    )
    second = store.record(ex(error="HTTP 500 boom", complete=False, replayed=True))
    assert second > first
    a, b = store.recent(None)
    assert (a.id, b.id) == (first, second)
    assert a.time == when and a.time.tzinfo is not None
    assert a.messages == messages and a.prompt == "2+2?"
    assert (a.reply, a.reasoning, a.finish_reason, a.model, a.requested_model) == (
        "4",
        "adding",
        "stop",
        "gpt-4o-mini-2024",
        "gpt-4o-mini",
    )
    assert a.tool_calls[0]["function"]["name"] == "f"
    assert a.usage == {"prompt_tokens": 9, "completion_tokens": 1}
    assert (a.prompt_tokens, a.completion_tokens, a.cost, a.cost_estimated, a.currency) == (
        9,
        1,
        0.5,
        False,
        "¥",
    )
    assert (a.request_key, a.conversation, a.turn, a.complete, a.replayed) == ("k1", "c-1", 0, True, False)
    assert b.error == "HTTP 500 boom" and b.replayed and not b.complete
    assert datetime.now(timezone.utc) - b.time < timedelta(minutes=1)


def test_from_reply_and_to_reply_round_trip(store: Store) -> None:
    reply = Reply(
        "the answer",
        reasoning="because",
        finish_reason="stop",
        usage={"prompt_tokens": 3, "completion_tokens": 2},
        model="served-model",
        tool_calls=[],
    )
    rid = store.record(
        Exchange.from_reply(
            reply,
            notebook="/nb",
            host="h",
            messages=[{"role": "user", "content": "q"}],
            requested_model="asked",
        )
    )
    (record,) = store.recent("/nb")
    assert record.id == rid and record.model == "served-model" and record.requested_model == "asked"
    back = record.to_reply()
    assert isinstance(back, Reply)
    assert (back.text, back.reasoning, back.finish_reason, back.usage, back.model, back.complete) == (
        reply.text,
        reply.reasoning,
        reply.finish_reason,
        reply.usage,
        reply.model,
        True,
    )


def test_recent_filters_by_notebook_limit_and_search(store: Store) -> None:
    for i in range(30):
        store.record(ex("/nb/a.ipynb", prompt=f"question {i}", reply=f"answer {i}"))
    store.record(ex("/nb/b.ipynb", prompt="翻译这段话", reply="Translate 100% of_it"))
    recent = store.recent("/nb/a.ipynb", limit=5)
    assert [r.prompt for r in recent] == [f"question {i}" for i in range(25, 30)]  # oldest first
    assert len(store.recent(None, limit=100)) == 31
    assert [r.notebook for r in store.recent(None, limit=1)] == ["/nb/b.ipynb"]
    assert [r.reply for r in store.recent("/nb/a.ipynb", search="ANSWER 7")] == [
        "answer 7",
        "answer 17",
        "answer 27",
    ]
    assert [r.prompt for r in store.recent(None, search="翻译")] == ["翻译这段话"]
    # LIKE's wildcards are searched as text, not as patterns.
    assert len(store.recent(None, search="100%")) == 1
    assert store.recent(None, search="1_0") == []
    assert len(store.recent(None, search="of_it")) == 1
    assert store.recent(None, search="question answer 12") == [store.recent("/nb/a.ipynb", 100)[12]]
    assert store.recent("/nb/c.ipynb") == []
    assert store.recent(None, limit=0) == []


def test_threads_sharing_one_store_lose_nothing(store: Store) -> None:
    def write(tag: int) -> None:
        for i in range(50):
            store.record(ex(prompt=f"t{tag}-{i}"))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    prompts = {r.prompt for r in store.recent(None, limit=1000)}
    assert prompts == {f"t{t}-{i}" for t in range(4) for i in range(50)}


# -- the file itself -----------------------------------------------------------------------------------


def test_default_location_and_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert store_path() == tmp_path / "xdg" / "shenma-magic" / "log.sqlite3"
    assert store_path({"XDG_DATA_HOME": "relative/dir", "HOME": "/h"}).parts[-3:] == (
        "share",
        "shenma-magic",
        "log.sqlite3",
    )
    with Store() as s:
        s.record(ex())
        assert s.path == store_path()
        for p in (s.path, Path(f"{s.path}-wal"), Path(f"{s.path}-shm")):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        assert stat.S_IMODE(s.path.parent.stat().st_mode) == 0o700
        assert sqlite3.connect(s.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_loose_modes_are_repaired_on_open(path: Path) -> None:
    Store(path).close()
    os.chmod(path, 0o644)
    os.chmod(path.parent, 0o755)
    with Store(path) as s:
        s.record(ex())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A folder the caller chose is left as it is; only the default folder is ours to tighten.
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755


def test_a_new_file_is_never_readable_by_others(path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        Store(path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_symlink_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.db"
    target.write_bytes(b"")
    link = tmp_path / "log.sqlite3"
    link.symlink_to(target)
    with pytest.raises(StoreError) as info:
        Store(link)
    assert "\n" not in str(info.value) and str(link) in str(info.value)


# -- bad files: one line, never a traceback ------------------------------------------------------------


def one_line(exc: StoreError, path: Path) -> str:
    text = str(exc)
    assert "\n" not in text and str(path) in text
    return text


@pytest.mark.parametrize(
    "content",
    [
        b"this is not a database at all" * 10,
        b"\x00" * 4096,
        b"SQLite format 3\x00" + b"\xff" * 4000,
        os.urandom(8192),
    ],
    ids=["text", "zeros", "bad-header", "random"],
)
def test_corrupt_file_gives_one_line(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(StoreError) as info:
        s = Store(path)
        s.record(ex())  # some damage only shows on first use
    assert "damaged" in one_line(info.value, path) or "cannot" in str(info.value)
    assert path.read_bytes() == content  # the user's file is left for them to inspect


def test_damage_inside_a_good_file_gives_one_line_on_use(path: Path) -> None:
    with Store(path) as s:
        for i in range(300):
            s.record(ex(prompt=f"q{i}" * 50))
        s._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(path.read_bytes())
    raw[8192:40960] = os.urandom(40960 - 8192)
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError) as info, Store(path) as s:
        s.recent(None, limit=1000)
        s.record(ex())
    one_line(info.value, path)


def test_newer_schema_is_left_alone(path: Path) -> None:
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        Store(path)
    text = one_line(info.value, path)
    assert "newer" in text and "upgrade" in text
    assert path.read_bytes() == before


def test_an_empty_or_version_0_file_is_upgraded(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    with Store(path) as s:
        s.record(ex())
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # A version-0 SQLite file with unrelated tables gets ours beside them.
    other = path.with_name("other.sqlite3")
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE notes (x)")
    db.commit()
    db.close()
    with Store(other) as s:
        s.record(ex())
        assert len(s.recent(None)) == 1


def test_a_foreign_file_with_our_table_names_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE exchanges (something_else TEXT)")
    db.commit()
    db.close()
    with pytest.raises(StoreError) as info:
        Store(path)
    assert "not a shenma-magic log" in one_line(info.value, path)
    # Nothing half-done: the failed upgrade was rolled back.
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 0


def test_migrating_twice_at_once_is_safe(path: Path) -> None:
    """Two processes opening a new file at the same moment both end up with one schema."""
    script = textwrap.dedent(
        f"""
        from shenma_magic._store import Store, Exchange
        s = Store({str(path)!r})
        s.record(Exchange(notebook="n", host="h", model="m", messages=[]))
        """
    )
    procs = [_python(script) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    with Store(path) as s:
        assert len(s.recent(None)) == 3


def test_locked_file_gives_one_line(path: Path) -> None:
    Store(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Store(path, busy_timeout=0.2) as s, pytest.raises(StoreError) as info:
            s.record(ex())
        assert "locked" in one_line(info.value, path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_unwritable_place_gives_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as info:
        Store(blocker / "log.sqlite3")
    one_line(info.value, blocker / "log.sqlite3")


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable, for root too: root ignores modes, but not the immutable attribute."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        try:
            yield
        finally:
            os.chmod(folder, 0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: cannot make a folder read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
def test_read_only_folder_gives_one_line(tmp_path: Path, existing: bool) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "log.sqlite3"
    if existing:
        with Store(path) as s:
            s.record(ex())
        for extra in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert not extra.exists()  # the last connection to close removes them
    with read_only(folder), pytest.raises(StoreError) as info, Store(path) as s:
        s.record(ex())
    text = one_line(info.value, path)
    assert "cannot" in text and "permissions" in text


# -- never a key ---------------------------------------------------------------------------------------


def test_the_file_holds_no_key(path: Path) -> None:
    unknown = "sk-pastedbysomeone0123456789ABCDEF"  # shaped like a key, though nobody told the store
    with Store(path, known_keys=lambda: [KEY, ODD_KEY]) as s:
        for where in range(3):
            s.record(
                Exchange(
                    notebook=f"/home/u/{KEY}/nb.ipynb",
                    host=f"relay{KEY}.example",
                    model=f"m-{KEY}",
                    requested_model=ODD_KEY,
                    messages=[
                        {"role": "system", "content": f"key is {KEY} and {ODD_KEY}"},
                        {
                            "role": "user",
                            "content": [{"type": "text", "text": f"{unknown}{KEY}中文{ODD_KEY}"}],
                        },
                        {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": KEY,
                                    "function": {"name": "f", "arguments": json.dumps({KEY: ODD_KEY})},
                                }
                            ],
                        },
                        {"role": "tool", "tool_call_id": KEY, "content": f'{{"k": "{KEY}"}}'},
                    ],
                    reply=f"echo {KEY} {ODD_KEY} {unknown}" * (where + 1),
                    reasoning=f"thinking about {KEY}",
                    tool_calls=[{"function": {"name": KEY, "arguments": ODD_KEY}}],
                    finish_reason=KEY,
                    usage={"note": KEY, KEY: 1},
                    currency=ODD_KEY,
                    error=f"HTTP 401 invalid key {KEY}",
                    conversation=KEY,
                    branch=ODD_KEY,
                )
            )
        records = s.recent(None)
        assert all("…" in r.reply for r in records)  # masked, not dropped
    assert_no_trace(path, KEY, ODD_KEY, unknown)


def test_keys_entered_later_are_masked_too(path: Path) -> None:
    keys: list[str] = []
    with Store(path, known_keys=lambda: keys) as s:
        keys.append("later-known-key-without-shape-1234")
        s.record(ex(reply="the key later-known-key-without-shape-1234 appears"))
    assert_no_trace(path, "later-known-key-without-shape-1234")


def test_key_store_lists_every_key_it_could_send(tmp_path: Path) -> None:
    ks = KeyStore(
        environ={
            "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
            "SHENMA_API_KEY": "sk-env-shenma-0000000000000001",
            "OPENAI_API_KEY": "sk-env-openai-0000000000000002",
        }
    )
    ks.set("https://a.example/v1", "sk-saved-00000000000000000003", save=True)
    ks.set("https://b.example/v1", "sk-session-000000000000000004")
    assert set(ks.known_keys()) == {
        "sk-env-shenma-0000000000000001",
        "sk-env-openai-0000000000000002",
        "sk-saved-00000000000000000003",
        "sk-session-000000000000000004",
    }


def test_an_image_carrying_a_key_is_not_kept(path: Path) -> None:
    leaky = PNG + KEY.encode()
    with Store(path, known_keys=lambda: [KEY]) as s:
        s.record(ex(messages=[image_message("look", leaky)]))
        (record,) = s.recent(None)
        ref = record.messages[0]["content"][1]
        assert ref["type"] == "image_ref" and s.image(ref["sha256"]) is None
    assert_no_trace(path, KEY)


key_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=key_text, after=key_text, field=st.sampled_from(["reply", "reasoning", "error", "prompt"]))
def test_a_known_key_anywhere_in_any_text_is_masked(
    tmp_path: Path, before: str, after: str, field: str
) -> None:
    with Store(tmp_path / "h.sqlite3", known_keys=lambda: [KEY, ODD_KEY]) as s:
        text = f"{before}{KEY}{after}{ODD_KEY}"
        fields: dict[str, Any] = {"prompt": text} if field == "prompt" else {field: text}
        s.record(ex(**fields))
        record = s.recent(None, limit=1)[0]
        stored = json.dumps([record.prompt, record.reply, record.reasoning, record.error], ensure_ascii=False)
        for run in runs(KEY) + runs(ODD_KEY):
            assert run.decode() not in stored
        s.forget(None)


# -- images --------------------------------------------------------------------------------------------


def test_an_image_resent_every_turn_is_stored_once(path: Path) -> None:
    with Store(path) as s:
        history: list[dict[str, Any]] = []
        for turn in range(6):
            history = [*history, image_message(f"turn {turn}")]
            s.record(ex(messages=history, turn=turn, conversation="c"))
            history = [*history, {"role": "assistant", "content": f"seen {turn}"}]
        s._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert s._conn().execute("SELECT count(*) FROM images").fetchone()[0] == 1
    blob = file_bytes(path)
    assert blob.count(b"UNIQUE-IMAGE-PAYLOAD-" * 40) == 1
    assert base64.b64encode(PNG)[:64] not in blob  # not kept as base64 in the messages either


def test_image_refs_keep_detail_and_come_back_as_the_same_data_url(store: Store) -> None:
    other = PNG.replace(b"UNIQUE", b"SECOND")
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "two"},
            {"type": "image_url", "image_url": {"url": data_url(), "detail": "low"}},
            {"type": "image_url", "image_url": {"url": data_url(other, "image/jpeg")}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    }
    store.record(ex(messages=[message], conversation="c", answer="hi"))
    (record,) = store.recent(None)
    parts = record.messages[0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_ref", "image_ref", "image_url"]
    assert parts[1]["detail"] == "low" and parts[2]["mime"] == "image/jpeg"
    assert store.image(parts[1]["sha256"]) == ("image/png", PNG)
    conversation = store.conversation("/nb/a.ipynb")
    assert conversation is not None
    assert conversation.turns[0][0] == message  # restored exactly as sent


# -- conversation --------------------------------------------------------------------------------------


def turn_exchange(notebook: str, conv: str, turn: int, history: list[dict[str, Any]], **kw: Any) -> Exchange:
    """An exchange of a chat turn; the conversation keeps its answer unless ``answer=None`` is given."""
    kw.setdefault("answer", kw.get("reply", "hi"))
    return ex(notebook, messages=history, conversation=conv, turn=turn, **kw)


def test_conversation_is_the_last_one_of_this_notebook(store: Store) -> None:
    nb = "/nb/a.ipynb"
    system = {"role": "system", "content": "sys"}
    store.record(turn_exchange(nb, "old", 0, [system, {"role": "user", "content": "old q"}], reply="old a"))
    q0 = {"role": "user", "content": "q0"}
    store.record(turn_exchange(nb, "new", 0, [system, q0], reply="a0"))
    q1 = {"role": "user", "content": "q1"}
    a0 = {"role": "assistant", "content": "a0"}
    # turn 1 failed before any text, then was asked again and answered through a tool call
    store.record(
        turn_exchange(
            nb, "new", 1, [system, q0, a0, q1], reply="", error="HTTP 502", complete=False, answer=None
        )
    )
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {"name": "f"}}]}
    result = {"role": "tool", "tool_call_id": "c", "content": "42"}
    store.record(
        turn_exchange(nb, "new", 1, [system, q0, a0, q1], reply="", tool_calls=[{"id": "c"}], answer=None)
    )
    store.record(turn_exchange(nb, "new", 1, [system, q0, a0, q1, call, result], reply="a1"))
    # turn 2 failed and was never retried: not part of the conversation
    a1 = {"role": "assistant", "content": "a1"}
    q2 = {"role": "user", "content": "q2"}
    store.record(
        turn_exchange(
            nb, "new", 2, [system, q0, a0, q1, call, result, a1, q2], reply="", error="x", answer=None
        )
    )
    store.record(turn_exchange("/nb/other.ipynb", "third", 0, [{"role": "user", "content": "elsewhere"}]))
    store.record(ex(nb, prompt="a batch row", answer="x"))  # conversation "" is not a chat

    conversation = store.conversation(nb)
    assert conversation is not None and conversation.id == "new" and len(conversation) == 2
    assert conversation.turns == [[q0, a0], [q1, call, result, a1]]
    assert list(conversation.branches) == [""]
    assert store.conversation("/nb/nothing.ipynb") is None


def test_conversation_with_branches(store: Store) -> None:
    nb = "/nb/cmp.ipynb"
    q = {"role": "user", "content": "compare"}
    for model in ("gpt-4o", "deepseek-r1"):
        store.record(turn_exchange(nb, "cmp", 0, [q], reply=f"{model} says", branch=model, model=model))
    q2 = {"role": "user", "content": "again"}
    store.record(
        turn_exchange(
            nb,
            "cmp",
            1,
            [q, {"role": "assistant", "content": "gpt-4o says"}, q2],
            reply="more",
            branch="gpt-4o",
        )
    )
    conversation = store.conversation(nb)
    assert conversation is not None
    assert conversation.turns == []
    assert set(conversation.branches) == {"gpt-4o", "deepseek-r1"}
    assert conversation.branches["deepseek-r1"] == [[q, {"role": "assistant", "content": "deepseek-r1 says"}]]
    assert len(conversation.branches["gpt-4o"]) == 2 and len(conversation) == 2


# -- replay --------------------------------------------------------------------------------------------


def test_find_returns_only_complete_answers_the_latest_first(store: Store) -> None:
    store.record(ex(reply="old", request_key="K"))
    store.record(ex(reply="new", request_key="K"))
    store.record(ex(reply="cut off", request_key="K", complete=False, finish_reason="length"))
    store.record(ex(reply="failed", request_key="K", error="boom"))
    store.record(ex(reply="other", request_key="J", error="boom"))
    found = store.find("K")
    assert found is not None and found.reply == "new"
    assert store.find("J") is None and store.find("") is None and store.find("nope") is None
    assert {k: r.reply for k, r in store.find_many(["K", "J", "nope", ""]).items()} == {"K": "new"}


def test_replay_deltas_rebuild_the_reply(store: Store) -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}},
        {"id": "call_2", "type": "function", "function": {"name": "mul", "arguments": "{}"}},
    ]
    store.record_many(
        [
            ex(reply="text", reasoning="why", usage={"prompt_tokens": 1}, model="served", request_key="A"),
            ex(reply="", tool_calls=calls, finish_reason="tool_calls", request_key="B"),
        ]
    )
    for key in ("A", "B"):
        record = store.find(key)
        assert record is not None
        builder = ReplyBuilder()
        for delta in replay_deltas(record):
            builder.add(delta)
        rebuilt, original = builder.build(), record.to_reply()
        assert (rebuilt.text, rebuilt.reasoning, rebuilt.usage, rebuilt.finish_reason, rebuilt.model) == (
            original.text,
            original.reasoning,
            original.usage,
            original.finish_reason,
            original.model,
        )
        assert rebuilt.tool_calls == original.tool_calls and rebuilt.complete


def test_find_many_handles_more_keys_than_one_query_takes(store: Store) -> None:
    keys = [f"key-{i}" for i in range(1200)]
    for key in keys[::3]:
        store.record(ex(reply=key, request_key=key))
    found = store.find_many(keys)
    assert set(found) == set(keys[::3]) and all(found[k].reply == k for k in found)


MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]


def test_request_key_counts_what_changes_the_answer() -> None:
    base = request_key("m", MESSAGES, {"temperature": 0.2, "max_tokens": 10})
    same = [
        request_key("m", MESSAGES, {"max_tokens": 10, "temperature": 0.2}),
        request_key("m", MESSAGES, {"temperature": 0.2, "max_tokens": 10.0, "timeout": 5, "max_retries": 9}),
        request_key("m", MESSAGES, {"temperature": 0.2, "max_tokens": 10, "top_p": None, "extra": None}),
        request_key("m", MESSAGES, {"temperature": 0.2, "extra": {"max_tokens": 10}}),
        request_key(
            "m", [dict(reversed(list(m.items()))) for m in MESSAGES], {"temperature": 0.2, "max_tokens": 10}
        ),
        request_key("m", MESSAGES, {"temperature": 0.2, "max_tokens": 10, "model": "ignored"}),
    ]
    assert all(k == base for k in same)
    different = [
        request_key("m2", MESSAGES, {"temperature": 0.2, "max_tokens": 10}),
        request_key("m", MESSAGES, {"temperature": 0.3, "max_tokens": 10}),
        request_key("m", MESSAGES, {"temperature": 0.2, "max_tokens": 11}),
        request_key("m", MESSAGES, {"temperature": 0.2}),
        request_key(
            "m",
            MESSAGES,
            {"temperature": 0.2, "max_tokens": 10, "extra": {"response_format": {"type": "json_object"}}},
        ),
        request_key("m", MESSAGES, {"temperature": 0.2, "max_tokens": 10, "tools": [{"type": "function"}]}),
        request_key("m", MESSAGES, {"temperature": 0.2, "max_tokens": 10, "seed": 1}),
        request_key("m", MESSAGES[1:], {"temperature": 0.2, "max_tokens": 10}),
        request_key(
            "m", [*MESSAGES[:1], {"role": "user", "content": "q "}], {"temperature": 0.2, "max_tokens": 10}
        ),
    ]
    assert len({base, *different}) == len(different) + 1
    assert len(base) == 64 and int(base, 16) >= 0


def test_request_key_knows_images_by_their_bytes() -> None:
    a = request_key("m", [image_message("x")], {})
    assert a == request_key("m", [image_message("x")], {})
    assert a != request_key("m", [image_message("x", PNG + b"!")], {})
    # The same bytes under a different data-URL spelling (padding/line breaks aside) are the same image.
    wrapped = image_message("x")
    url = wrapped["content"][1]["image_url"]["url"]
    wrapped["content"][1]["image_url"]["url"] = url.replace(
        "data:image/png;base64,", "DATA:image/png;base64,"
    )
    assert a == request_key("m", [wrapped], {})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    options=st.dictionaries(
        st.sampled_from(["temperature", "max_tokens", "seed", "stop", "tools"]), json_values
    )
)
def test_request_key_ignores_order_and_transport_options(options: dict[str, Any]) -> None:
    shuffled = dict(reversed(list(options.items())))
    noisy = {**shuffled, "timeout": 3.0, "stream": True, "max_retries": 2}
    assert request_key("m", MESSAGES, options) == request_key("m", MESSAGES, noisy)


# -- forget --------------------------------------------------------------------------------------------


def test_forget_leaves_no_trace_of_the_text(path: Path) -> None:
    secret_a, secret_b = "NOTEBOOK-A-PRIVATE-WORDS", "B-笔记本的内容-KEPT"
    only_a = PNG.replace(b"UNIQUE", b"ONLY-A")
    with Store(path) as s:
        for i in range(50):
            s.record(
                ex(
                    "/nb/a.ipynb",
                    prompt=f"{secret_a} {i}",
                    reply=secret_a,
                    messages=[image_message(secret_a, only_a)],
                )
            )
            s.record(ex("/nb/b.ipynb", prompt=secret_b, reply=secret_b, messages=[image_message(secret_b)]))
        done = s.forget("/nb/a.ipynb")
        assert (done.exchanges, done.images, done.wiped) == (50, 1, True)
        assert s.recent("/nb/a.ipynb") == [] and len(s.recent("/nb/b.ipynb", 100)) == 50
        assert s.image(s.recent("/nb/b.ipynb", 1)[0].messages[0]["content"][1]["sha256"]) is not None
    blob = file_bytes(path)
    assert secret_a.encode() not in blob and b"ONLY-A-IMAGE" not in blob
    assert secret_b.encode() in blob
    with Store(path) as s:
        done = s.forget(None)
        assert (done.exchanges, done.images) == (50, 1)
        assert s.recent(None) == []
    blob = file_bytes(path)
    assert secret_b.encode() not in blob and b"UNIQUE-IMAGE" not in blob


def test_forget_while_another_process_reads_says_so(path: Path) -> None:
    with Store(path) as s:
        s.record(ex(prompt="x"))
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM exchanges").fetchone()  # holds a read snapshot
        try:
            with Store(path, busy_timeout=0.2) as other:
                done = other.forget(None)
        finally:
            reader.execute("ROLLBACK")
            reader.close()
        assert done.exchanges == 1 and done.wiped is False


# -- usage ---------------------------------------------------------------------------------------------


def local(y: int, m: int, d: int, hh: int = 12) -> datetime:
    return datetime(y, m, d, hh).astimezone()


def test_usage_by_local_day_and_model(store: Store) -> None:
    def spend(
        when: datetime, model: str, p: int, c: int, cost: float | None, est: bool = False, **kw: Any
    ) -> None:
        store.record(
            ex(
                model=model,
                time=when,
                prompt_tokens=p,
                completion_tokens=c,
                cost=cost,
                cost_estimated=est,
                **kw,
            )
        )

    spend(local(2026, 11, 1, 23), "a", 10, 1, 0.1)
    spend(local(2026, 11, 2, 0), "a", 20, 2, 0.2)  # just after local midnight: the next day
    spend(local(2026, 11, 2, 9), "a", 30, 3, None)
    spend(local(2026, 11, 2, 10), "a", 1, 1, 0.05, est=True)
    spend(local(2026, 11, 2, 11), "b", 5, 5, None)
    spend(local(2026, 11, 2, 12), "a", 99, 99, 9.9, replayed=True)  # replayed: paid nothing
    spend(local(2026, 11, 2, 13), "a", 0, 0, None, error="HTTP 401")  # nothing generated, nothing paid
    spend(local(2026, 10, 30), "a", 1000, 1000, 100.0)  # before since
    spend(local(2026, 11, 2, 14), "a", 7, 7, 0.7, notebook="/nb/other.ipynb")

    rows = store.usage(local(2026, 11, 1, 0))
    table = {(r.day.isoformat(), r.model): r for r in rows}
    assert list(table) == [("2026-11-01", "a"), ("2026-11-02", "a"), ("2026-11-02", "b")]
    day2 = table[("2026-11-02", "a")]
    assert (day2.prompt_tokens, day2.completion_tokens, day2.replies, day2.unpriced) == (58, 13, 4, 1)
    assert day2.cost == pytest.approx(0.95) and day2.estimated
    b = table[("2026-11-02", "b")]
    assert b.cost is None and b.unpriced == 1 and not b.estimated
    assert table[("2026-11-01", "a")].cost == pytest.approx(0.1)
    only_other = store.usage(local(2026, 11, 1, 0), notebook="/nb/other.ipynb")
    assert [(r.model, r.prompt_tokens) for r in only_other] == [("a", 7)]
    naive = store.usage(datetime(2026, 11, 2, 0, 0))  # a naive time is local
    assert sum(r.replies for r in naive) == 5


# -- many processes ------------------------------------------------------------------------------------


def _python(script: str, *, drop_root: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def demote() -> None:  # pragma: no cover  # runs in the child
        if drop_root and os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)

    return subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=demote,
    )


WRITER = """
import sys
from datetime import datetime, timezone
from shenma_magic._store import Store, Exchange
tag, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = Store(path, known_keys=lambda: [{key!r}])
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()  # start together
for i in range(n):
    s.record(Exchange(notebook="/nb/" + tag, host="h", model="model-" + tag, messages=[{{"role": "user",
        "content": f"{{tag}} {{i}} {key}"}}], reply="ok", prompt_tokens=3, completion_tokens=2, cost=0.01,
        complete=True, finish_reason="stop"))
print("done")
"""


def test_two_processes_writing_at_once_lose_nothing(path: Path) -> None:
    Store(path).close()
    script = WRITER.format(key=KEY)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, tag, "200", str(path)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("one", "two")
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "done" in out, err
    with Store(path) as s:
        records = s.recent(None, limit=1000)
        assert len(records) == 400 and len({r.id for r in records}) == 400
        for tag in ("one", "two"):
            assert sorted(int(r.prompt.split()[1]) for r in records if r.notebook == f"/nb/{tag}") == list(
                range(200)
            )
        # both wrote interleaved, not one after the other (or the test proves nothing about locking)
        tags = [r.notebook for r in records]
        assert sum(1 for x, y in itertools.pairwise(tags) if x != y) > 1
        rows = s.usage(datetime.now(timezone.utc) - timedelta(hours=1))
        by_model = {r.model: r for r in rows}
        assert {m: (r.replies, r.prompt_tokens, r.completion_tokens) for m, r in by_model.items()} == {
            "model-one": (200, 600, 400),
            "model-two": (200, 600, 400),
        }
        assert sum(r.cost or 0 for r in rows) == pytest.approx(4.0)
    assert_no_trace(path, KEY)
