"""TLS verification stays on, and REQUESTS_CA_BUNDLE works as requests honours it (a real HTTPS server)."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from shenma_magic import ChatClient, ConnectError
from tests._util import https_server as serve_https

BODY = (
    b'data: {"choices":[{"index":0,"delta":{"content":"secure"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with serve_https(tmp_path, "127.0.0.1", _Handler) as (port, cert):
        yield f"https://127.0.0.1:{port}/v1", cert


def test_self_signed_certificate_is_refused(
    https_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = https_server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = ChatClient(url, "sk-TLSKEY0000000000000000000000", max_retries=0)
    with pytest.raises(ConnectError, match="TLS") as info:
        list(client.stream([{"role": "user", "content": "hi"}]))
    assert "REQUESTS_CA_BUNDLE" in info.value.hint


def test_requests_ca_bundle_is_honoured(
    https_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = https_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    reply = ChatClient(url, "sk-TLSKEY0000000000000000000000").complete([{"role": "user", "content": "hi"}])
    assert reply == "secure" and reply.complete
