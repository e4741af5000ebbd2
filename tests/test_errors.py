"""Server errors as facts: one line, a stable kind, a hint that fits any front door; and the advice each
front door adds (test_front_door_*). The bodies are what LiteLLM, llama.cpp's server, one-api, new-api,
OpenAI and vLLM answer."""

from __future__ import annotations

import json
import math
from email.utils import formatdate
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from shenma_magic import _errors
from shenma_magic._errors import (
    KINDS,
    APIStatusError,
    LimitExceededError,
    ShenmaError,
    classify,
    error_from_payload,
    error_from_response,
    parse_retry_after,
    request_id_from_headers,
)
from shenma_magic._hints import front_door_hint

# Words that belong to one front door and must never be in an error's own hint.
MAGIC_WORDS = ("%chat", " -m", "--", "-o ")
PYTHON_WORDS = ("api_key=", "model=", "timeout=", "max_tokens=", "reset()", ".models()")
RELAY_WORDS = ("令牌", "分组", "渠道", "额度", "充值")


def body(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def litellm(message: str, type_: Optional[str], code: str) -> bytes:
    return body({"error": {"message": message, "type": type_, "param": None, "code": code}})


def llamacpp(code: int, message: str, type_: str, **extra: Any) -> bytes:
    return body({"error": {"code": code, "message": message, "type": type_, **extra}})


def one_api(message: str, type_: str = "one_api_error", code: Optional[str] = None) -> bytes:
    error: dict[str, Any] = {"message": message, "type": type_}
    if code is not None:
        error["code"] = code
    return body({"error": error})


def new_api(message: str, code: str = "") -> bytes:
    return body({"error": {"message": message, "type": "new_api_error", "param": "", "code": code}})


CASES = [
    # (name, status, body, kind, a fragment of the hint, relay words allowed in the hint)
    (
        "litellm-context",
        400,
        litellm(
            "litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: "
            "OpenAIException - This model's maximum context length is 8192 tokens. However, your messages "
            "resulted in 9000 tokens. Please reduce the length of the messages.\nmodel=gpt-4. "
            "context_window_fallbacks=None. fallbacks=None.\n\nSet 'context_window_fallback' - "
            "https://docs.litellm.ai/docs/routing#fallbacks\nReceived Model Group=gpt-4\n"
            "Available Model Group Fallbacks=None",
            None,
            "400",
        ),
        "context_length",
        "longer than the model's context",
        False,
    ),
    (
        "litellm-rate-limit",
        429,
        litellm(
            "litellm.RateLimitError: RateLimitError: OpenAIException - Error code: 429 - {'error': "
            "{'message': 'Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): "
            "Limit 30000, Used 29000, Requested 2000. Please try again in 2s.', 'type': 'tokens', "
            "'param': None, 'code': 'rate_limit_exceeded'}}\nReceived Model Group=gpt-4o\n"
            "Available Model Group Fallbacks=None LiteLLM Retried: 2 times, LiteLLM Max Retries: 3",
            "throttling_error",
            "429",
        ),
        "rate_limit",
        "wait and try again",
        False,
    ),
    (
        "litellm-no-db",
        400,
        litellm("No connected db.", "no_db_connection", "400"),
        "server",
        "server's side, not in the request",
        False,
    ),
    (
        "litellm-auth",
        401,
        litellm(
            "Authentication Error, Invalid proxy server token passed. Received API Key = sk-...1234, "
            "Key Hash (Token) =e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855. Unable to "
            "find token in cache or `LiteLLM_VerificationTokenTable`",
            "auth_error",
            "401",
        ),
        "auth",
        "check the API key",
        False,
    ),
    (
        "litellm-bad-model",
        400,
        litellm(
            "{'error': '/chat/completions: Invalid model name passed in model=gpt-5. Call `/v1/models` to "
            "view available models for your key.'}",
            "None",
            "400",
        ),
        "model",
        "pick another model",
        False,
    ),
    (
        "litellm-timeout",
        408,
        litellm(
            "litellm.Timeout: Connection timed out after 600.0 seconds.\n\nReceived Model Group=gpt-4o\n"
            "Available Model Group Fallbacks=None",
            "None",
            "408",
        ),
        "server_timeout",
        "timed out",
        False,
    ),
    (
        "litellm-500",
        500,
        litellm(
            "litellm.APIConnectionError: APIConnectionError: OpenAIException - Connection error.\n"
            "Received Model Group=gpt-4o\nAvailable Model Group Fallbacks=None",
            "None",
            "500",
        ),
        "server",
        "the server failed",
        False,
    ),
    (
        "litellm-budget",
        400,
        litellm("Budget has been exceeded! Current cost: 10.2, Max budget: 10.0", "budget_exceeded", "400"),
        "quota",
        "quota or balance is used up",
        False,
    ),
    (
        "llamacpp-context",
        400,
        llamacpp(
            400,
            "the request exceeds the available context size, try increasing it",
            "exceed_context_size_error",
            n_prompt_tokens=5000,
            n_ctx=4096,
        ),
        "context_length",
        "longer than the model's context",
        False,
    ),
    (
        "llamacpp-kv",
        500,
        llamacpp(
            500, "Input prompt is too big compared to KV size. Please try increasing KV size.", "server_error"
        ),
        "context_length",
        "send less",
        False,
    ),
    (
        "llamacpp-auth",
        401,
        llamacpp(401, "Invalid API Key", "authentication_error"),
        "auth",
        "API key",
        False,
    ),
    (
        "llamacpp-loading",
        503,
        llamacpp(503, "Loading model", "unavailable_error"),
        "server",
        "overloaded or unavailable",
        False,
    ),
    ("llamacpp-404", 404, llamacpp(404, "File Not Found", "not_found_error"), "not_found", "base URL", False),
    (
        "llamacpp-501",
        501,
        llamacpp(
            501,
            "This server does not support embeddings. Start it with `--embeddings`",
            "not_supported_error",
        ),
        "bad_request",
        "does not support",
        False,
    ),
    (
        "one-api-auth",
        401,
        one_api("无效的令牌 (request id: 2024112118002166758483917356345)"),
        "auth",
        "(令牌)",
        True,
    ),
    (
        "one-api-no-channel",
        503,
        one_api("当前分组 default 下对于模型 gpt-4o 无可用渠道 (request id: 20241121180021667)"),
        "no_channel",
        "group (分组)",
        True,
    ),
    (
        "one-api-user-quota",
        403,
        one_api("用户额度不足", code="insufficient_user_quota"),
        "quota",
        "(额度)",
        True,
    ),
    ("one-api-token-quota", 403, one_api("该令牌额度已用尽"), "quota", "top up (充值)", True),
    (
        "new-api-no-channel",
        503,
        new_api(
            "当前分组 default 下对于模型 gpt-5 无可用渠道 (request id: 20250101000000)", "model_not_found"
        ),
        "no_channel",
        "no channel serves this model",
        True,
    ),
    ("new-api-model", 403, new_api("该令牌无权访问模型 gpt-5"), "model", "group (分组)", True),
    ("new-api-busy", 429, new_api("当前分组上游负载已饱和，请稍后再试"), "rate_limit", "(额度)", True),
    (
        "new-api-preconsume",
        403,
        new_api(
            "预扣费额度失败, 用户剩余额度: ＄0.000000, 需要预扣费额度: ＄0.010000", "insufficient_user_quota"
        ),
        "quota",
        "(额度)",
        True,
    ),
    (
        "other-overloaded",
        503,
        body({"error": {"message": "upstream overloaded", "type": "server_error"}}),
        "server",
        "overloaded or unavailable",
        False,
    ),
    (
        "openai-quota",
        429,
        body(
            {
                "error": {
                    "message": "You exceeded your current quota, please check your plan and billing details.",
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "insufficient_quota",
                }
            }
        ),
        "quota",
        "quota or balance",
        False,
    ),
    (
        "openai-model",
        404,
        body(
            {
                "error": {
                    "message": "The model `gpt-5` does not exist or you do not have access to it.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "model_not_found",
                }
            }
        ),
        "model",
        "does not offer this model",
        False,
    ),
    (
        "openai-context",
        400,
        body(
            {
                "error": {
                    "message": "This model's maximum context length is 128000 tokens. However, your messages "
                    "resulted in 130000 tokens. Please reduce the length of the messages.",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "context_length_exceeded",
                }
            }
        ),
        "context_length",
        "send less",
        False,
    ),
    (
        "openai-500",
        500,
        body(
            {
                "error": {
                    "message": "The server had an error while processing your request. Sorry about that!",
                    "type": "server_error",
                }
            }
        ),
        "server",
        "the server failed",
        False,
    ),
    (
        "openai-bad-option",
        400,
        body({"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error"}}),
        "bad_request",
        "check the model name and the options",
        False,
    ),
    (
        "vllm-context",
        400,
        body(
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 "
                "tokens (4000 in the messages, 1000 in the completion).",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        ),
        "context_length",
        "send less",
        False,
    ),
    (
        "vllm-model",
        404,
        body(
            {
                "object": "error",
                "message": "The model `foo` does not exist.",
                "type": "NotFoundError",
                "code": 404,
            }
        ),
        "model",
        "pick another model",
        False,
    ),
    (
        "nginx-502",
        502,
        b"<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>",
        "server",
        "gateway",
        False,
    ),
    (
        "cloudflare-524",
        524,
        b"<!DOCTYPE html><html><title>A timeout occurred | Cloudflare</title></html>",
        "server_timeout",
        "gateway timed out",
        False,
    ),
    ("bare-429", 429, b"", "rate_limit", "rate limit or quota", False),
    ("text-500", 500, b"Internal Server Error\n\n  upstream   said no\n", "server", "try again", False),
    ("odd-status", 418, b"", "http", "", False),
]


@pytest.mark.parametrize(
    ("status", "raw", "kind", "fragment", "relay"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_real_error_bodies(status: int, raw: bytes, kind: str, fragment: str, relay: bool) -> None:
    err = error_from_response(status, raw, reason="Reason")
    assert err.kind == kind
    assert fragment in err.hint
    assert "\n" not in str(err) and "  " not in str(err)
    assert "\n" not in err.server_message
    assert not [w for w in (*MAGIC_WORDS, *PYTHON_WORDS) if w in err.hint]
    if not relay:
        assert not [w for w in RELAY_WORDS if w in err.hint], "relay advice for a server that is not a relay"
    assert err.from_relay is relay


def test_request_ids_from_the_body() -> None:
    err = error_from_response(401, one_api("无效的令牌 (request id: 2024112118002166758483917356345)"))
    assert err.request_id == "2024112118002166758483917356345"


@pytest.mark.parametrize(
    "headers",
    [
        {"x-request-id": "req_1"},
        {"X-Request-Id": "req_1"},
        {"x-litellm-call-id": "req_1"},
        {"X-Oneapi-Request-Id": "req_1"},
        {"request-id": "req_1"},
        {"Content-Type": "text/plain", "apim-request-id": " req_1\n"},
    ],
)
def test_request_ids_from_the_headers(headers: dict[str, str]) -> None:
    assert request_id_from_headers(CaseInsensitiveDict(headers)) == "req_1"


def test_no_request_id_in_the_headers() -> None:
    assert request_id_from_headers(CaseInsensitiveDict({"content-type": "x", "x-request-id": " "})) is None


def test_errors_inside_a_stream_are_facts_too() -> None:
    litellm_event = {
        "error": {"message": "litellm.APIError: upstream\n\nfailed", "type": None, "code": "500"}
    }
    err = error_from_payload(litellm_event)
    assert err is not None and err.kind == "stream" and "\n" not in str(err)
    relay_event = {"error": {"message": "当前分组 default 下对于模型 x 无可用渠道", "type": "new_api_error"}}
    err = error_from_payload(relay_event)
    assert err is not None and err.kind == "no_channel" and err.from_relay
    err = error_from_payload("plain\ntext", event="error")
    assert err is not None and err.server_message == "plain text"


def test_the_server_text_is_masked_before_it_is_cut() -> None:
    key = "sk-" + "K" * 45
    for cut in range(250, 320):
        raw = ("x" * cut + " " + key + " tail").encode()
        err = error_from_response(500, raw, redact=lambda text: text.replace(key, "sk-…"))
        assert "K" * 10 not in str(err), cut


def test_retry_after_is_said_once() -> None:
    err = error_from_response(429, b"", retry_after=7)
    assert err.hint.endswith("the server asks to retry after 7 s")
    assert front_door_hint(err, "magic").count("retry after 7 s") == 1


# -- kinds ------------------------------------------------------------------------------------------------


def test_every_class_has_a_documented_kind() -> None:
    classes = [c for c in vars(_errors).values() if isinstance(c, type) and issubclass(c, ShenmaError)]
    assert len(classes) >= 10
    for cls in classes:
        assert cls.kind in KINDS, cls
    assert LimitExceededError("x").kind == "limit"
    assert ShenmaError("x", kind="no_key").kind == "no_key"


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from(
        [0, 400, 401, 402, 403, 404, 408, 413, 418, 422, 429, 500, 501, 502, 503, 504, 524]
    ),
    message=st.text(max_size=40)
    | st.sampled_from(
        ["无可用渠道", "当前分组 x", "令牌额度已用尽", "quota exceeded", "timed out", "overloaded"]
    ),
    type_=st.none() | st.sampled_from(["new_api_error", "server_error", "invalid_request_error"]),
)
def test_every_hint_fits_any_front_door(status: int, message: str, type_: Optional[str]) -> None:
    kind, hint = classify(status, message, type_)
    assert kind in KINDS
    assert not [w for w in (*MAGIC_WORDS, *PYTHON_WORDS) if w in hint]


# -- front doors ------------------------------------------------------------------------------------------


def auth_error(relay: bool = True) -> APIStatusError:
    return error_from_response(401, one_api("无效的令牌") if relay else llamacpp(401, "Invalid API Key", "x"))


@pytest.mark.parametrize(
    ("door", "source", "env", "expected"),
    [
        ("magic", "entered", "", "check the API key (令牌): enter it again with %chat key"),
        ("magic", "saved", "", "check the API key (令牌): enter it again with %chat key"),
        (
            "magic",
            "env",
            "SHENMA_API_KEY",
            "check the API key (令牌) in $SHENMA_API_KEY, or enter another with %chat key",
        ),
        ("magic", None, "", "the server wants the API key (令牌): enter one with %chat key"),
        ("python", "argument", "", "check the API key (令牌) passed as api_key="),
        (
            "python",
            "env",
            "OPENAI_API_KEY",
            "check the API key (令牌) in $OPENAI_API_KEY, or pass another as api_key=",
        ),
        ("python", None, "", "the server wants the API key (令牌): pass api_key="),
    ],
)
def test_front_door_auth_words(door: Any, source: Any, env: str, expected: str) -> None:
    assert front_door_hint(auth_error(), door, key_source=source, key_env=env) == expected


def test_enter_it_again_only_when_a_key_was_entered() -> None:
    for source in (None, "env"):
        assert "again" not in front_door_hint(auth_error(), "magic", key_source=source)
    assert "令牌" not in front_door_hint(auth_error(relay=False), "magic", key_source="entered")


@pytest.mark.parametrize(
    ("status", "raw", "magic", "python"),
    [
        (503, one_api("当前分组 default 下对于模型 x 无可用渠道"), "with -m", "another model="),
        (
            404,
            llamacpp(404, "model foo not found", "not_found_error"),
            "-m (%chat models",
            "ChatClient.models()",
        ),
        (400, litellm("maximum context length is 8192 tokens", None, "400"), "--new", "Session.reset()"),
        (400, body({"error": {"message": "bad temperature"}}), "%chat models", "model="),
        (524, b"", "the gateway timed out", "the gateway timed out"),  # no front-door words needed
    ],
)
def test_front_door_words_by_kind(status: int, raw: bytes, magic: str, python: str) -> None:
    err = error_from_response(status, raw)
    assert magic in front_door_hint(err, "magic")
    assert python in front_door_hint(err, "python")


def test_front_door_words_for_our_own_errors() -> None:
    from shenma_magic._errors import APITimeoutError, ConfigError, ProtocolError

    timeout = APITimeoutError("127.0.0.1 went silent for more than 3 s", "the partial answer is kept")
    assert "--timeout" in front_door_hint(timeout, "magic") and "timeout=" in front_door_hint(
        timeout, "python"
    )
    no_key = ConfigError("no API key for api.whatai.cc", kind="no_key")
    assert "%chat key" in front_door_hint(no_key, "magic") and "api_key=" in front_door_hint(no_key, "python")
    empty = ProtocolError("127.0.0.1 answered with an empty body", "try again", kind="empty_reply")
    assert front_door_hint(empty, "magic") == "try again"
    assert "--new" in front_door_hint(empty, "magic", long_request=True)
    assert "reset()" in front_door_hint(empty, "python", long_request=True)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(sorted(KINDS)),
    source=st.sampled_from([None, "entered", "saved", "env", "argument"]),
    relay=st.booleans(),
    long_request=st.booleans(),
)
def test_each_door_speaks_only_its_own_words(kind: str, source: Any, relay: bool, long_request: bool) -> None:
    err = APIStatusError("HTTP 400", "a neutral hint", status_code=400, kind=kind, from_relay=relay)
    magic = front_door_hint(
        err, "magic", key_source=source, key_env="SHENMA_API_KEY", long_request=long_request
    )
    python = front_door_hint(
        err, "python", key_source=source, key_env="SHENMA_API_KEY", long_request=long_request
    )
    assert not [w for w in PYTHON_WORDS if w in magic]
    assert not [w for w in (" -m", "--", "%chat models", "%chat timeout") if w in python]


# -- Retry-After ------------------------------------------------------------------------------------------

NOW = 1_750_000_000.0  # the clock the HTTP dates below are read against


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        ("5", 5.0),
        ("  12 ", 12.0),
        ("1.5", 1.5),
        ("86400", 86_400.0),
        (formatdate(NOW + 30, usegmt=True), 30.0),
        (formatdate(NOW - 3600, usegmt=True), 0.0),  # a date already past: retry now
        (formatdate(NOW + 60), 60.0),  # "-0000": UTC with no zone said
        # Nothing a retry can plan with: None, never a huge, negative or non-finite number.
        ("86401", None),
        ("99999999999", None),
        ("251606131195", None),
        ("9" * 400, None),
        ("1e309", None),
        ("1e3", None),
        ("inf", None),
        ("-inf", None),
        ("nan", None),
        ("NaN", None),
        ("-5", None),
        ("-0", None),
        ("+5", None),
        ("1_000", None),
        ("0x10", None),
        ("١٢", None),  # digits float() reads, HTTP does not
        ("5 s", None),
        ("soon", None),
        ("", None),
        ("   ", None),
        (None, None),
        (formatdate(NOW + 86_400 * 365 * 30, usegmt=True), None),  # 30 years from now
        ("Fri, 31 Dec 9999 23:59:59 GMT", None),
        ("Mon, 32 Jan 2025 00:00:00 GMT", None),
        ("Sun, 06 Nov 1994 08:49:37 +9999", None),
        ("Sun, 06 Nov 99999 08:49:37 GMT", None),
        ("x" * 10_000, None),
    ],
)
def test_retry_after_is_a_bounded_wait_or_none(header: Optional[str], seconds: Optional[float]) -> None:
    got = parse_retry_after(header, now=NOW)
    if seconds is None:
        assert got is None, got
    else:
        assert got is not None and math.isfinite(got) and got == pytest.approx(seconds, abs=1)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.from_regex(r"-?[0-9]{0,20}(\.[0-9]{0,5})?(e[0-9]{1,4})?", fullmatch=True))
def test_no_retry_after_header_gives_an_unbounded_wait(header: str) -> None:
    got = parse_retry_after(header, now=NOW)
    assert got is None or (math.isfinite(got) and 0 <= got <= _errors.MAX_RETRY_AFTER)


# -- 5xx that say little ----------------------------------------------------------------------------------

NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
)
CLOUDFLARE_524 = (
    b"<!DOCTYPE html><html><head><title>api.example | 524: A timeout occurred</title></head></html>"
)
NOTHING = "(the server sent no message)"
OVERLOADED = "the server is overloaded or unavailable: try again in a moment"


@pytest.mark.parametrize(
    ("status", "raw", "message", "kind", "hint"),
    [
        (503, b"", f"HTTP 503 {NOTHING}", "server", OVERLOADED),
        (503, b"  \r\n ", f"HTTP 503 {NOTHING}", "server", OVERLOADED),
        (503, b"{}", f"HTTP 503 {NOTHING}", "server", OVERLOADED),
        (503, b"[]", f"HTTP 503 {NOTHING}", "server", OVERLOADED),
        (503, b"null", f"HTTP 503 {NOTHING}", "server", OVERLOADED),
        (503, b'{"error": {}}', f"HTTP 503 {NOTHING}", "server", OVERLOADED),
        (503, b'{"error": null, "code": ""}', f"HTTP 503 {NOTHING}", "server", OVERLOADED),
        (503, b"{not json", "HTTP 503: {not json", "server", OVERLOADED),
        (503, b'{"status": "down"}', 'HTTP 503: {"status": "down"}', "server", OVERLOADED),
        (503, b"no healthy upstream", "HTTP 503: no healthy upstream", "server", OVERLOADED),
        (503, b"\xff\xfe garbage", "HTTP 503: \ufffd\ufffd garbage", "server", OVERLOADED),
        (
            503,
            b"<html><body>down</body></html>",
            "HTTP 503: HTML error page from a gateway: down",
            "server",
            OVERLOADED,
        ),
        (500, b"{}", f"HTTP 500 {NOTHING}", "server", "the server failed: try again in a moment"),
        (
            500,
            b"Internal Server Error",
            "HTTP 500: Internal Server Error",
            "server",
            "the server failed: try again in a moment",
        ),
        (
            502,
            NGINX_502,
            "HTTP 502: HTML error page from a gateway: 502 Bad Gateway",
            "server",
            "the gateway in front",
        ),
        (502, b"{}", f"HTTP 502 {NOTHING}", "server", "the gateway in front"),
        (504, b"", f"HTTP 504 {NOTHING}", "server_timeout", "the gateway timed out"),
        (
            524,
            CLOUDFLARE_524,
            "HTTP 524: HTML error page from a gateway: api.example | 524: A timeout occurred",
            "server_timeout",
            "the gateway timed out",
        ),
        (529, b"{}", f"HTTP 529 {NOTHING}", "server", "the server failed"),
    ],
)
def test_a_5xx_that_says_little_is_described_as_what_it_is(
    status: int, raw: bytes, message: str, kind: str, hint: str
) -> None:
    err = error_from_response(status, raw)
    assert (err.message, err.kind) == (message, kind)
    assert err.hint.startswith(hint), err.hint
    for door in ("magic", "python"):
        said = f"{err.message} {front_door_hint(err, door)}"
        # Only a relay that said so (无可用渠道) gets the no-channel advice.
        assert err.kind != "no_channel" and not [w for w in ("渠道", "分组", "channel", "group") if w in said]
        assert "\n" not in said


@pytest.mark.parametrize("raw", [b"{}", b"", b"<html></html>", b"busy"])
def test_no_channel_only_when_the_relay_said_it(raw: bytes) -> None:
    assert error_from_response(503, raw).kind == "server"
    said = error_from_response(503, one_api("当前分组 default 下对于模型 gpt-4o 无可用渠道"))
    assert said.kind == "no_channel" and "another model" in front_door_hint(said, "magic")


def test_a_reply_head_error_never_quotes_what_the_server_sent() -> None:
    import http.client

    import requests
    import urllib3

    key = "sk-HEADLEAK0123456789abcdefghijklmn"
    for inner, kind in [
        (http.client.BadStatusLine(f"{key}\r\n"), "protocol"),
        (http.client.LineTooLong("header line"), "limit"),
        (http.client.HTTPException("got more than 100 headers"), "limit"),
        (http.client.RemoteDisconnected("Remote end closed connection without response"), "connect"),
    ]:
        wrapped = requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("aborted", inner))
        err = _errors.reply_head_error(wrapped, "relay.example")
        assert err is not None and err.kind == kind and "relay.example" in str(err)
        assert key[5:15] not in str(err) and "\n" not in str(err)
    assert _errors.reply_head_error(requests.exceptions.ConnectionError("refused"), "h") is None
    assert _errors.reply_head_error(ValueError("x"), "h") is None
