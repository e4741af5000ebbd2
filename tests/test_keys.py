"""Key sources, host scoping, the key file's safety, and masking."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from shenma_magic._errors import ConfigError
from shenma_magic._keys import KeyStore
from shenma_magic._secret import Secret, looks_like_key, mask, redact

KEY = "sk-TESTKEY0123456789abcdefSECRET9f3a"


def store(tmp_path: Path, **env: str) -> KeyStore:
    return KeyStore(environ={"XDG_CONFIG_HOME": str(tmp_path / "cfg"), **env})


def test_mask_and_secret_never_show_the_key() -> None:
    assert mask(KEY) == "sk-…9f3a"
    secret = Secret(KEY)
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}"):
        assert KEY not in shown and "9f3a" in shown
    assert secret.reveal() == KEY
    assert redact(f"bad key {KEY}!", KEY) == "bad key sk-…9f3a!"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)


def test_looks_like_key() -> None:
    assert looks_like_key(f"-m gpt --key {KEY}")
    assert not looks_like_key("-m gpt-4o-mini -t 0.2 --system 'sk- is a prefix'")


def test_order_session_then_file_then_env(tmp_path: Path) -> None:
    ks = store(
        tmp_path, SHENMA_API_KEY="sk-env-shenma-0000000000000001", OPENAI_API_KEY="sk-env-openai-000000000002"
    )
    url = "https://api.whatai.cc/v1"
    assert ks.resolve(url)[0] == Secret("sk-env-shenma-0000000000000001")
    ks2 = store(tmp_path)
    ks2.set(url, "sk-file-0000000000000000000003", save=True)
    assert ks.resolve(url) == (Secret("sk-file-0000000000000000000003"), f"key file {ks.path}")
    ks.set(url, "sk-session-000000000000000004")
    assert ks.resolve(url)[0] == Secret("sk-session-000000000000000004")


def test_keys_are_scoped_to_their_host(tmp_path: Path) -> None:
    ks = store(tmp_path, SHENMA_API_KEY="sk-env-shenma-0000000000000001")
    ks.set("https://relay-a.example/v1", "sk-a-000000000000000000000000", save=True)
    assert ks.resolve("https://relay-a.example/v1")[0] == Secret("sk-a-000000000000000000000000")
    # Neither the saved key nor the environment key goes to a host they do not belong to...
    assert ks.resolve("https://evil.example/v1") == (None, "")
    # ...but the environment key goes to its own host and to this machine.
    assert ks.resolve("https://api.whatai.cc/v1")[0] is not None
    assert ks.resolve("http://127.0.0.1:8000/v1")[0] == Secret("sk-env-shenma-0000000000000001")
    scoped = store(
        tmp_path, SHENMA_API_KEY="sk-x-0000000000000000000000", SHENMA_BASE_URL="https://my.relay/v1"
    )
    assert scoped.resolve("https://my.relay/v1")[0] is not None
    assert scoped.resolve("https://api.whatai.cc/v1") == (None, "")
    openai_only = store(tmp_path, OPENAI_API_KEY="sk-o-0000000000000000000000")
    assert openai_only.resolve("https://api.whatai.cc/v1") == (
        None,
        "",
    )  # an OpenAI key is not sent to a relay


def test_key_file_is_private_and_outside_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ks = store(tmp_path)
    ks.set("https://api.whatai.cc/v1", KEY, save=True)
    mode = stat.S_IMODE(ks.path.stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(ks.path.parent.stat().st_mode) == 0o700
    assert json.loads(ks.path.read_text())["keys"] == {"api.whatai.cc": KEY}
    assert KEY not in repr(ks)
    os.chmod(ks.path, 0o644)
    assert store(tmp_path).resolve("https://api.whatai.cc/v1")[0] == Secret(KEY)
    assert stat.S_IMODE(ks.path.stat().st_mode) == 0o600  # loosened permissions are tightened again
    assert ks.forget("https://api.whatai.cc/v1") is True
    assert store(tmp_path).resolve("https://api.whatai.cc/v1") == (None, "")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="project folder"):
        store(tmp_path).set("https://api.whatai.cc/v1", KEY, save=True)


def test_known_keys_are_every_source_and_sources_are_named_masked(tmp_path: Path) -> None:
    ks = store(
        tmp_path, SHENMA_API_KEY="sk-env-shenma-0000000000000001", OPENAI_API_KEY="sk-env-openai-000000000002"
    )
    ks.set("https://relay-a.example/v1", "sk-file-0000000000000000000003", save=True)
    ks.set("https://relay-b.example/v1", "sk-session-000000000000000004")
    assert sorted(ks.known_keys()) == sorted(
        [
            "sk-env-shenma-0000000000000001",
            "sk-env-openai-000000000002",
            "sk-file-0000000000000000000003",
            "sk-session-000000000000000004",
        ]
    )
    sources = ks.key_sources()
    assert {source for _, source in sources} >= {"$SHENMA_API_KEY", "$OPENAI_API_KEY"}
    assert all(isinstance(secret, Secret) for secret, _ in sources)
    assert "0000000000000001" not in repr(sources)
    assert not hasattr(ks, "saved_hosts")  # dead code removed


def test_a_key_is_stripped_but_refused_with_inner_whitespace(tmp_path: Path) -> None:
    ks = store(tmp_path)
    assert ks.set("https://api.whatai.cc/v1", f"  {KEY}\n") == "api.whatai.cc"
    assert ks.resolve("https://api.whatai.cc/v1")[0] == Secret(KEY)
    with pytest.raises(ConfigError, match="header") as info:
        ks.set("https://api.whatai.cc/v1", KEY[:10] + " " + KEY[10:])
    assert KEY[:10] not in str(info.value)
    with pytest.raises(ConfigError, match="no key"):
        ks.set("https://api.whatai.cc/v1", "   ")


def test_a_bad_key_in_the_key_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    ks = store(tmp_path)
    ks.set("https://api.whatai.cc/v1", KEY, save=True)
    data = json.loads(ks.path.read_text())
    data["keys"]["api.whatai.cc"] = KEY[:5] + "\u200b" + KEY[5:]
    ks.path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"keys\.json") as info:
        store(tmp_path).resolve("https://api.whatai.cc/v1")
    assert KEY[5:15] not in str(info.value)
