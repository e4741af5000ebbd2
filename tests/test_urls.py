"""One parse decides both the host a key is scoped to and the host that is connected to.

Three real servers on different loopback addresses (relay A on 127.0.0.1, relay B on 127.0.0.2, a TLS
server on 127.0.0.3), each with its own key in a KeyStore. For every accepted URL form, the one server that
got a request is the one whose host the key was scoped to, and it got that key; for every refused form, no
server got anything and the error is one line. A property test checks, for arbitrary URL-ish strings, that
what is accepted is read the same way by requests, urllib3 and the stdlib.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import urllib3.util
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic import ChatClient, ConfigError, InsecureTransportError
from shenma_magic._keys import KeyStore
from shenma_magic._secret import host_of, is_loopback_host
from shenma_magic._urls import BaseURL, parse_base_url
from tests._util import https_server
from tests.relay import Relay

KEYS = {
    "127.0.0.1": "sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1",
    "127.0.0.2": "sk-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB2",
    "127.0.0.3": "sk-TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT3",
    "localhost": "sk-LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL4",
}
MESSAGES = [{"role": "user", "content": "which server am I talking to?"}]
STREAM = (
    b'data: {"choices":[{"index":0,"delta":{"content":"tls"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


class _TLSHandler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(STREAM)))
        self.end_headers()
        self.wfile.write(STREAM)

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


class Servers:
    def __init__(self, a: Relay, b: Relay, tls_port: int, tls_seen: list[dict[str, str]]) -> None:
        self.a, self.b, self.tls_port, self.tls_seen = a, b, tls_port, tls_seen

    def fill(self, template: str) -> str:
        return template.format(a=self.a.port, b=self.b.port, t=self.tls_port)

    def received(self) -> dict[str, list[dict[str, str]]]:
        """Requests per server host: headers (lower-cased) and the path."""
        return {
            "127.0.0.1": [{**r.headers, "path": r.path} for r in self.a.requests],
            "127.0.0.2": [{**r.headers, "path": r.path} for r in self.b.requests],
            "127.0.0.3": list(self.tls_seen),
        }

    def port_of(self, host: str) -> int:
        return {"127.0.0.1": self.a.port, "localhost": self.a.port, "127.0.0.2": self.b.port}.get(
            host, self.tls_port
        )

    def clear(self) -> None:
        self.a.clear()
        self.b.clear()
        self.tls_seen.clear()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    seen: list[dict[str, str]] = []
    handler = type("Handler", (_TLSHandler,), {"seen": seen})
    tls = https_server(tmp_path_factory.mktemp("tls"), "127.0.0.3", handler)
    with tls as (tls_port, cert), pytest.MonkeyPatch.context() as mp:
        mp.setenv("REQUESTS_CA_BUNDLE", str(cert))
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            mp.delenv(var, raising=False)
        with Relay("127.0.0.1") as a, Relay("127.0.0.2") as b:
            yield Servers(a, b, tls_port, seen)


@pytest.fixture
def store(servers: Servers, tmp_path: Path) -> KeyStore:
    """One key per host, each entered for that host's server."""
    ks = KeyStore(environ={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    ks.set(f"http://127.0.0.1:{servers.a.port}/v1", KEYS["127.0.0.1"])
    ks.set(f"http://127.0.0.2:{servers.b.port}/v1", KEYS["127.0.0.2"])
    ks.set(f"https://127.0.0.3:{servers.tls_port}/v1", KEYS["127.0.0.3"])
    ks.set(f"http://localhost:{servers.a.port}/v1", KEYS["localhost"])
    servers.clear()
    return ks


# ------------------------------------------------------------------------------------- accepted forms

ACCEPTED = [
    "http://127.0.0.1:{a}",
    "http://127.0.0.1:{a}/",
    "http://127.0.0.1:{a}/v1",
    "http://127.0.0.1:{a}/v1/",
    "http://127.0.0.1:{a}/v1/chat/completions",
    "http://127.0.0.1:{a}/v1/models",
    "HTTP://127.0.0.1:{a}/v1",
    "  http://127.0.0.1:{a}/v1\n",
    "\thttp://127.0.0.1:{a}/v1\r\n",
    "http://127.0.0.1.:{a}/v1",  # the root label: one trailing dot is the same host
    "http://127.0.0.2:{b}/v1",
    "http://127.0.0.2:{b}/v1/chat/completions/",
    "http://localhost:{a}/v1",
    "http://LocalHost:{a}/v1",
    "http://localhost.:{a}/v1",
    "https://127.0.0.3:{t}/v1",
    "https://127.0.0.3:{t}",
    "HTTPS://127.0.0.3:{t}/v1/chat/completions",
    "127.0.0.3:{t}/v1",  # a bare host gets https://
]


@pytest.mark.parametrize("template", ACCEPTED)
def test_the_server_that_gets_the_request_is_the_one_the_key_is_for(
    servers: Servers, store: KeyStore, template: str
) -> None:
    url = servers.fill(template)
    base = parse_base_url(url)
    key, _ = store.resolve(url)
    assert key is not None and key.reveal() == KEYS[base.host]
    reply = ChatClient(url, key, max_retries=0).complete(MESSAGES)
    assert reply.complete, reply.error
    received = servers.received()
    target = "127.0.0.1" if base.host == "localhost" else base.host
    assert [h for h, reqs in received.items() if reqs] == [target], received
    (request,) = received[target]
    assert request["authorization"] == f"Bearer {KEYS[base.host]}"
    assert request["path"] == base.path + "/chat/completions"
    assert base.port == servers.port_of(base.host)


# -------------------------------------------------------------------------------------- refused forms

REFUSED = [
    # userinfo, and a host hidden behind '@' (the attack of issue 8.1 and its cousins)
    "http://127.0.0.2:{b}\\@127.0.0.1:{a}/v1",
    "http://127.0.0.2:{b}\\\\@127.0.0.1:{a}/v1",
    "http://127.0.0.1:{a}@127.0.0.2:{b}/v1",
    "http://user:pass@127.0.0.1:{a}/v1",
    "http://sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1@127.0.0.1:{a}/v1",
    "http://127.0.0.2:{b}#@127.0.0.1:{a}/v1",
    "http://127.0.0.2:{b}?@127.0.0.1:{a}/v1",
    "http://127.0.0.2:{b}/v1;@127.0.0.1:{a}",
    "https://127.0.0.3:{t}@127.0.0.1:{a}/v1",
    "http://127.0.0.2:{b}%40127.0.0.1:{a}/v1",
    # backslashes, queries, fragments
    "http://127.0.0.1:{a}\\v1",
    "http:\\\\127.0.0.1:{a}/v1",
    "http://127.0.0.1:{a}/v1\\..\\x",
    "http://127.0.0.1:{a}/v1?x=1",
    "http://127.0.0.1:{a}/v1#frag",
    "http://127.0.0.1:{a}/v1?",
    # percent-encoding in the host or delimiters encoded in the path
    "http://127.0.0.1%2f:{a}/v1",
    "http://127.0.0.%31:{a}/v1",
    "http://127.0.0.1:{a}/%2e%2e/v1",
    "http://127.0.0.1:{a}/v1%2fchat",
    "http://127.0.0.1:{a}/v1%40x",
    "http://127.0.0.1:{a}/v1%5c",
    "http://127.0.0.1:{a}/v1%3a",
    "http://127.0.0.1:{a}/v1%23",
    "http://127.0.0.1:{a}/v1%3f",
    # whitespace and control characters inside
    "http://127.0.0.1:{a} /v1",
    "http://127.0.0.1:{a}/v 1",
    "http://127.0.0.1:{a}/\tv1",
    "http://127.0.0.1:{a}/v1\x00",
    "\x00http://127.0.0.1:{a}/v1",
    "http://127.0.0.1:{a}/v1\x1b[31m",
    "http://127.0.0.1\u200b:{a}/v1",
    "http://127.0.0.1:{a}/v1\u00a0",
    "http://127.0.0.1:{a}/v1\u2028",
    "http://127.0.0.1:{a}/v1\x7f",
    "http://127.0.0.1\r\n:{a}/v1",
    "http://127.0.0.1:{a}/v1\r\nX-Injected: 1",
    "http://127.0.0.2:{b}/v1 http://127.0.0.1:{a}/v1",
    # non-canonical IPv4 forms
    "http://2130706433:{a}/v1",
    "http://0177.0.0.1:{a}/v1",
    "http://0x7f.0.0.1:{a}/v1",
    "http://0x7f000001:{a}/v1",
    "http://0x7f.1:{a}/v1",
    "http://127.1:{a}/v1",
    "http://127.0.1:{a}/v1",
    "http://127.0.0.01:{a}/v1",
    "http://127.000.000.001:{a}/v1",
    "http://127.0.0.1.1:{a}/v1",
    "http://127.0.0.0x1:{a}/v1",
    "http://evil.2130706433:{a}/v1",
    "http://127.0.0.1..:{a}/v1",
    "http://.127.0.0.1:{a}/v1",
    "http://[127.0.0.1]:{a}/v1",
    # IPv6: unclosed, junk after, zone ids
    "http://[::1:{a}/v1",
    "http://[::1",
    "http://[::1]x:{a}/v1",
    "http://[fe80::1%25lo]:{a}/v1",
    "http://[::ffff:127.0.0.2]junk/v1",
    # look-alike hosts
    "http://ｌｏｃａｌｈｏｓｔ:{a}/v1",
    "http://127。0。0。1:{a}/v1",
    "http://localhost\u3002:{a}/v1",
    "http://127\uff0e0\uff0e0\uff0e2:{b}/v1",
    # ports
    "http://127.0.0.1:{a}:{b}/v1",
    "http://127.0.0.1:0/v1",
    "http://127.0.0.1:65536/v1",
    "http://127.0.0.1:-1/v1",
    "http://127.0.0.1:+{a}/v1",
    "http://127.0.0.1:/v1",
    "http://127.0.0.1:{a}x/v1",
    "http://127.0.0.1:0{a}0/v1",
    # schemes and paths
    "ftp://127.0.0.1:{a}/v1",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "http:///127.0.0.1:{a}/v1",
    "//127.0.0.1:{a}/v1",
    "http://127.0.0.1:{a}//v1",
    "http://127.0.0.1:{a}/v1/../v2",
    "http://127.0.0.1:{a}/./v1",
    "http://127.0.0.1:{a}/v1/\u00e9",
    "http://127.0.0.1:{a}/v1/<script>",
    "",
    "   ",
]


@pytest.mark.parametrize("template", REFUSED)
def test_an_ambiguous_url_is_refused_before_anything_is_sent(
    servers: Servers, store: KeyStore, template: str
) -> None:
    url = servers.fill(template)
    errors: list[ConfigError] = []
    for attempt in (
        lambda: parse_base_url(url),
        lambda: ChatClient(url, KEYS["127.0.0.1"], max_retries=0),
        lambda: ChatClient(url, None, max_retries=0),
        lambda: store.resolve(url),
        lambda: store.set(url, KEYS["127.0.0.2"]),
        lambda: host_of(url),
    ):
        with pytest.raises(ConfigError) as info:
            attempt()
        errors.append(info.value)
    for err in errors:
        text = str(err)
        assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\x00" not in text
        assert all(key not in text for key in KEYS.values())
    assert servers.received() == {"127.0.0.1": [], "127.0.0.2": [], "127.0.0.3": []}


def test_the_tables_are_big_enough() -> None:
    assert len(REFUSED) >= 40 and len(ACCEPTED) >= 15


@pytest.mark.parametrize(
    "template",
    ["http://foo.localhost:{a}/v1", "http://127.0.0.1.nip.io:{a}/v1", "http://localhost.localdomain:{a}/v1"],
)
def test_names_that_only_look_local_get_no_key_over_plain_http(servers: Servers, template: str) -> None:
    url = servers.fill(template)
    with pytest.raises(InsecureTransportError):
        ChatClient(url, KEYS["127.0.0.1"])
    assert servers.received() == {"127.0.0.1": [], "127.0.0.2": [], "127.0.0.3": []}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.3.4", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("foo.localhost", False),
        ("localhost.", False),
        ("localhost.localdomain", False),
        ("127.0.0.1.nip.io", False),
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:127.0.0.1", False),
        ("2130706433", False),
        ("0177.0.0.1", False),
        ("127.1", False),
        ("", False),
        (None, False),
    ],
)
def test_only_literal_loopback_and_localhost_are_trusted(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_environment_key_goes_to_the_host_its_base_url_names(servers: Servers, tmp_path: Path) -> None:
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "SHENMA_API_KEY": KEYS["127.0.0.3"],
        "SHENMA_BASE_URL": f"https://127.0.0.3:{servers.tls_port}/v1",
    }
    ks = KeyStore(environ=env)
    assert ks.resolve(f"https://127.0.0.3:{servers.tls_port}/v1")[0] is not None
    assert ks.resolve("https://relay.example/v1") == (None, "")
    # A SHENMA_BASE_URL that parsers could read two ways scopes its key to nowhere but this machine.
    ks = KeyStore(environ={**env, "SHENMA_BASE_URL": "https://relay.example\\@api.whatai.cc/v1"})
    assert ks.resolve("https://api.whatai.cc/v1") == (None, "")
    assert ks.resolve("https://relay.example/v1") == (None, "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.whatai.cc", BaseURL("https", "api.whatai.cc", None, "/v1")),
        ("https://API.WhatAI.cc.:443/v1/", BaseURL("https", "api.whatai.cc", None, "/v1")),
        ("http://127.0.0.1:80/x/y", BaseURL("http", "127.0.0.1", None, "/x/y")),
        ("http://[::1]:8000/v1", BaseURL("http", "::1", 8000, "/v1")),
        ("http://[0:0:0:0:0:0:0:1]:8000", BaseURL("http", "::1", 8000, "/v1")),
        ("https://中转.example/v1", BaseURL("https", "xn--fiqq40n.example", None, "/v1")),
        ("https://bücher.example", BaseURL("https", "xn--bcher-kva.example", None, "/v1")),
        ("https://my_relay.internal:8443/api/v1", BaseURL("https", "my_relay.internal", 8443, "/api/v1")),
    ],
)
def test_canonical_forms(url: str, expected: BaseURL) -> None:
    assert parse_base_url(url) == expected
    assert parse_base_url(expected.url) == expected  # the canonical form is a fixed point


# ----------------------------------------------------------------------------------- property: one host

FRAGMENTS = [
    "http://", "https://", "HTTP://", "http:", "//", "", "127.0.0.1", "127.0.0.2", "localhost",
    "evil.example", "api.whatai.cc", "@", "\\", "%40", "%2f", "%", "#", "?", ":", ":80", ":443", ":8080",
    ":0", "[", "]", "::1", "[::1]", ".", "..", "/", "/v1", "/chat/completions", " ", "\t", "\n", "\x00",
    "\x7f", "\u3002", "ａ", "\u200b", "0x7f", "0177", "2130706433", "xn--fiqq40n", "中转", "ü", "-", "_",
    ";", "=", "&", "'", "~",
]  # fmt: skip


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _hosts_as_parsed_elsewhere(url: str) -> dict[str, Any]:
    """How requests (the URL it prepares), urllib3 (what it connects to) and urlsplit read ``url``."""
    prepared = requests.Request("POST", url + "/chat/completions").prepare().url
    assert prepared is not None
    by_urllib3 = urllib3.util.parse_url(prepared)
    split = urlsplit(prepared)
    return {
        "urllib3": ((by_urllib3.host or "").strip("[]").lower(), by_urllib3.port),
        "urlsplit": ((split.hostname or "").lower(), split.port),
    }


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=9), st.text(max_size=4))
def test_any_accepted_url_is_connected_where_its_key_is_scoped(parts: list[str], tail: str) -> None:
    url = "".join(parts) + tail
    try:
        base = parse_base_url(url)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert host_of(url) == base.host  # the key's scope
    assert parse_base_url(base.url) == base
    port = base.port or _default_port(base.scheme)
    for parser, (host, seen_port) in _hosts_as_parsed_elsewhere(base.url).items():
        assert host == base.host, (parser, url, base)
        assert (seen_port or _default_port(base.scheme)) == port, (parser, url, base)
    # And what was accepted was not ambiguous to begin with: urllib3 reads the input itself the same way.
    raw = url.strip(" \t\r\n")
    raw = raw if "://" in raw else "https://" + raw
    theirs = urllib3.util.parse_url(raw)
    if base.host.isascii() and "xn--" not in base.host:
        assert (theirs.host or "").strip("[]").lower().rstrip(".") == base.host, (url, base)
