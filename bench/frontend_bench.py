"""Frontend traffic benchmark: what a streamed reply costs the browser, in messages and bytes.

Run from the repository root::

    .venv/bin/python bench/frontend_bench.py            # 20,000-char reply, 4,000 deltas over ~8 s
    .venv/bin/python bench/frontend_bench.py --quick    # 2,000-char reply, 400 deltas over ~1 s

The reply is deterministic Markdown (Chinese and English prose, lists, fenced code, a table), cut into
5-character deltas and served by an in-process :class:`tests.relay.Relay` on 127.0.0.1 as a scripted
OpenAI stream: ``--batch`` events, then a sleep, so the whole stream takes about ``--seconds``.

Each contestant gets a fresh kernel (``jupyter_client.manager.start_new_kernel``, kernel ``python3`` of
this venv, ``SHENMA_BASE_URL`` = the relay, ``SHENMA_API_KEY`` = a fake key), one unmeasured setup cell,
then the measured cell:

    ours       ``%load_ext shenma_magic`` (setup), then ``%%chat`` / ``/bench``
    naive      ``ChatClient.stream`` + ``handle.update(Markdown(full_text))`` on every delta
    throttled  the same, at most one update per 50 ms (plus a last one)
    text       ``print(delta, end="", flush=True)`` per delta: plain text, the floor

Every iopub message whose parent is the measured execute request is collected until the kernel is idle.
Messages are read from the client's iopub socket as raw ZMQ frames (the socket ``kc.get_iopub_msg``
reads; raw, so that sizes are exact and so that deserializing megabytes does not hold the GIL that the
in-process relay needs to keep its pace). Per message:

    bytes      the JSON frames the kernel serialized: header + parent_header + metadata + content
               (+ binary buffers, none here); "wire" adds the ZMQ routing frames, delimiter and HMAC
    time       the kernel's header date, relative to the moment the execute request was sent

Visible updates: display_data, update_display_data, stream, and comm_msg "update"s whose state holds
a key that changes what is shown (value, children, outputs, layout/display); an Output widget's
``msg_id`` toggles and comm_open/comm_close are not counted. Updates/s: visible updates per full
1-second window from the first visible reply text to the last visible update (median and max).
First text: the first visible update containing the reply's opening words.

Finally a notebook (``%load_ext`` cell + ``%%chat`` cell) is run with nbclient against the relay, and
the saved outputs of the ``%%chat`` cell are checked: text/markdown and text/html present, no widget
view left behind. This is a benchmark, not a test: it exits 0 whatever the numbers are (1 if a
contestant's cell fails).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from jupyter_client.manager import start_new_kernel  # noqa: E402

from tests.relay import Relay, Scripted, stream_of  # noqa: E402

FAKE_KEY = "sk-bench-0000000000000000000000000000"
PROMPT = "/bench"
MODEL = "gpt-4o-mini"
DELTA_CHARS = 5
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# Widget state keys whose change the user sees. Output.msg_id only routes the next outputs.
# Visible updates sent less than this apart (kernel clock) are one "burst" (one refresh of the view).
BURST_GAP = 0.005
VISIBLE_STATE = frozenset({"value", "children", "outputs", "display", "layout", "description"})

# --------------------------------------------------------------------------- the reply

_ZH = [
    "神马中转API把每个请求转发给上游模型，再把回答逐字流回来。",
    "流式输出的好处是第一个字很快就出现，用户不用盯着空白的单元格发呆。",
    "如果前端每收到一个增量就重绘整段文本，浏览器的负担会随着回答长度平方增长。",
    "我们只重发仍在增长的最后一段，已经写完的段落只发送一次。",
    "表格、列表和代码块在流式过程中也应该尽早显示成正确的格式。",
    "笔记本保存以后，别人在没有内核的情况下也应该能看到完整的回答。",
    "中转服务通常兼容 OpenAI 的接口，所以同一个客户端可以连接很多模型。",
    "当网络很慢时，状态行会显示已经等待了多久以及收到了多少个字符。",
    "按下中断键时，已经收到的部分回答会被保留下来，不会丢失。",
    "密钥从不写进笔记本，也不会出现在错误信息里。",
]
_EN = [
    "The relay forwards every request to an upstream model and streams the answer back.",
    "Streaming shows the first words quickly, so nobody stares at an empty cell.",
    "Re-sending the whole answer on every delta makes the traffic grow with its square.",
    "Only the growing tail is re-sent; finished paragraphs go to the browser exactly once.",
    "Tables, lists and code blocks should look right while they are still being written.",
    "A saved notebook must show the answer without a kernel or any widget state.",
    "Most relays speak the OpenAI protocol, so one client reaches many models.",
    "When the network is slow, the status line says how long we have waited.",
    "Pressing interrupt keeps the part of the answer that already arrived.",
    "The key never lands in the notebook, and never in an error message either.",
]
_INLINE = [
    "`stream=True`",
    "**增量渲染**",
    "*throttling*",
    "[OpenAI API](https://platform.openai.com/docs)",
    "`%%chat`",
    "**display_id**",
    "`text/markdown`",
]
_CODE = [
    (
        "python",
        [
            "from shenma_magic import ChatClient",
            "",
            'client = ChatClient("https://api.whatai.cc/v1", api_key="sk-...")',
            "text = []",
            'for delta in client.stream([{"role": "user", "content": "你好"}]):',
            "    if hasattr(delta, 'text') and len(text) < 10_000:",
            "        text.append(delta.text)  # keep every piece",
            'print("".join(text), "<done> & bye")',
        ],
    ),
    (
        "bash",
        [
            "curl -N https://api.whatai.cc/v1/chat/completions \\",
            '  -H "Authorization: Bearer $SHENMA_API_KEY" \\',
            '  -H "Content-Type: application/json" \\',
            '  -d \'{"model": "gpt-4o-mini", "stream": true, \\',
            '       "messages": [{"role": "user", "content": "hi"}]}\'',
            "# each line: data: {...}  then  data: [DONE]",
        ],
    ),
]


def _sentence(rng: random.Random) -> str:
    text = rng.choice(_ZH) if rng.random() < 0.55 else rng.choice(_EN)
    if rng.random() < 0.3:
        words = text.split(" ")
        if len(words) > 3:  # English: put an inline element between two words
            at = rng.randrange(1, len(words) - 1)
            words.insert(at, rng.choice(_INLINE))
            text = " ".join(words)
        else:  # Chinese: before the final stop
            text = text[:-1] + " " + rng.choice(_INLINE) + " " + text[-1]
    return text


def _paragraph(rng: random.Random) -> str:
    out = ""
    for _ in range(rng.randint(3, 6)):
        sentence = _sentence(rng)
        out += sentence if not out or out.endswith("。") else " " + sentence
    return out


def _list(rng: random.Random) -> str:
    numbered = rng.random() < 0.4
    lines = []
    for i in range(rng.randint(3, 6)):
        mark = f"{i + 1}." if numbered else "-"
        lines.append(f"{mark} {_sentence(rng)}")
        if rng.random() < 0.2:
            lines.append(f"   - {_sentence(rng)}")
    return "\n".join(lines)


def _code(rng: random.Random, index: int) -> str:
    lang, lines = _CODE[index % len(_CODE)]
    return f"```{lang}\n" + "\n".join(lines) + "\n```"


def _table(rng: random.Random) -> str:
    rows = ["| 模型 Model | 首字延迟 (s) | tokens/s | 备注 notes |", "| --- | ---: | ---: | --- |"]
    for name in rng.sample(["gpt-4o-mini", "deepseek-r1", "claude-3-5", "qwen-max", "glm-4", "kimi"], 5):
        note = rng.choice(["稳定", "fast", "偶尔 429", "reasoning", "便宜 cheap"])
        rows.append(f"| {name} | {rng.uniform(0.2, 2.5):.2f} | {rng.randint(20, 140)} | {note} |")
    return "\n".join(rows)


def make_reply(chars: int, seed: int = 20240601) -> str:
    """Deterministic Markdown of exactly ``chars`` characters, ending in a plain prose paragraph."""
    rng = random.Random(seed)
    blocks = ["# 神马 Benchmark 报告: streaming Markdown into a notebook"]
    section = 0
    code_count = 0
    kinds = ["p", "p", "list", "p", "code", "p", "table", "p", "list", "p"]
    i = 0
    while len("\n\n".join(blocks)) < chars - 600:
        kind = kinds[i % len(kinds)]
        i += 1
        if i % len(kinds) == 1:
            section += 1
            blocks.append(f"## 第 {section} 节 Section {section}")
        if kind == "p":
            blocks.append(_paragraph(rng))
        elif kind == "list":
            blocks.append(_list(rng))
        elif kind == "code":
            blocks.append(_code(rng, code_count))
            code_count += 1
        else:
            blocks.append(_table(rng))
    head = "\n\n".join(blocks) + "\n\n"
    need = chars - len(head) - 1  # the last paragraph, then "\n"
    tail = ""
    while len(tail) < need:
        tail += rng.choice(_ZH) if rng.random() < 0.5 else " " + rng.choice(_EN) + " "
    tail = tail[: need - 1].rstrip() if need > 1 else ""
    tail = tail.ljust(need - 1, "。") + "。" if need >= 1 else ""
    text = head + tail + "\n"
    text = text[:chars]
    assert len(text) == chars, (len(text), chars)
    return text


def reply_stream(
    reply: str, seconds: float, batch: int, delta_chars: int = DELTA_CHARS
) -> tuple[int, list[Any]]:
    """The number of deltas, and the relay's chunks: ``batch`` events joined into one write, then a
    sleep, ... about ``seconds`` in all (one write per batch keeps the in-process relay cheap)."""
    deltas = [reply[i : i + delta_chars] for i in range(0, len(reply), delta_chars)]
    events = stream_of(
        deltas,
        usage={"prompt_tokens": 3, "completion_tokens": len(deltas), "total_tokens": 3 + len(deltas)},
        model=MODEL,
    )
    groups = max(1, (len(events) + batch - 1) // batch)
    pause = seconds / groups
    chunks: list[Any] = []
    for g in range(groups):
        if g:
            chunks.append(pause)
        # stream_of was given no delay, so every event is bytes; the pauses are the floats added here.
        chunks.append(b"".join(e for e in events[g * batch : (g + 1) * batch] if isinstance(e, bytes)))
    return len(deltas), chunks


# --------------------------------------------------------------------------- shapes


def one_line_reply(chars: int) -> str:
    """One enormous line: prose without a single newline (the splitter can cut nothing)."""
    rng = random.Random(7)
    words = [
        "stream",
        "relay",
        "token",
        "模型",
        "回答",
        "browser",
        "notebook",
        "kernel",
        "`code`",
        "**bold**",
    ]
    parts = ["Shape one-line:"]
    size = len(parts[0])
    while size < chars:
        word = rng.choice(words)
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts)[:chars]


def table_reply(chars: int) -> str:
    """A heading, then one huge table (a row every ~60 characters) until ``chars``."""
    rows = ["# Shape table", "", "| id | model | latency (s) | note |", "| ---: | --- | :---: | --- |"]
    size = sum(len(r) + 1 for r in rows)
    i = 0
    while size < chars:
        i += 1
        row = f"| {i} | model-{i % 17} | {(i * 37 % 997) / 100:.2f} | 备注 note {i % 5} |"
        rows.append(row)
        size += len(row) + 1
    return "\n".join(rows)[:chars].rsplit("\n", 1)[0] + "\n"


def code_reply(chars: int) -> str:
    """A heading, then one huge fenced Python block until ``chars``, closed at the end."""
    lines = ["# Shape code", "", "```python"]
    size = sum(len(r) + 1 for r in lines) + 4
    i = 0
    while size < chars:
        i += 1
        line = (
            f"def f_{i}(x: int) -> int:  # <{i}> & more"
            if i % 3 == 1
            else f"    return x * {i} + len('s{i}')"
        )
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n```\n"


@dataclass
class Shape:
    name: str
    text: str
    delta_chars: int
    seconds: float
    batch: int
    marker: str  # early words that show the first visible reply text


def make_shapes(names: list[str], scale: float, args: Any) -> list[Shape]:
    out = []
    for name in names:
        if name == "mixed":
            chars = args.chars or (2000 if args.quick else 20000)
            seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 8.0)
            text = make_reply(chars)
            out.append(Shape(name, text, DELTA_CHARS, seconds, args.batch, text[2:4]))
        elif name == "one-line":
            out.append(Shape(name, one_line_reply(int(3_000_000 * scale)), 20, 15 * scale, 500, "Shape"))
        elif name == "tiny-deltas":
            text = make_reply(int(1_000_000 * scale))
            out.append(Shape(name, text, 1, 20 * scale, 2000, text[2:4]))
        elif name == "table":
            out.append(Shape(name, table_reply(int(1_000_000 * scale)), 10, 10 * scale, 500, "Shape"))
        elif name == "code":
            out.append(Shape(name, code_reply(int(1_000_000 * scale)), 10, 10 * scale, 500, "Shape"))
        else:
            raise SystemExit(f"unknown shape {name!r}")
    return out


# --------------------------------------------------------------------------- contestants

# A warm-up %%chat whose echoed reply renders math and the code languages of the reply (Pygments loads a
# lexer the first time it meets a language): "warm" is a kernel that has shown a reply like this before.
WARM_UP = "%%chat\nwarm up $x^2$\n\n```python\nx = 1\n```\n\n```bash\necho hi\n```\n\n| a |\n| - |\n| 1 |"

_CLIENT_SETUP = f"""\
import os, time
from IPython.display import Markdown, display
from shenma_magic import ChatClient, TextDelta
client = ChatClient(os.environ["SHENMA_BASE_URL"], os.environ["SHENMA_API_KEY"])
messages = [{{"role": "user", "content": {PROMPT!r}}}]
"""

CONTESTANTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    # name: (description, setup cells, measured cell)
    "ours": (
        "%%chat (WidgetView), first %%chat of the kernel",
        ("%load_ext shenma_magic",),
        f"%%chat\n{PROMPT}",
    ),
    "ours-warm": (
        "%%chat (WidgetView), after one short %%chat",
        ("%load_ext shenma_magic", WARM_UP),
        f"%%chat --new\n{PROMPT}",
    ),
    "ours-text": (
        "%%chat with %chat display text (TextView): the CPU floor of the package",
        ("%load_ext shenma_magic", "%chat display text"),
        f"%%chat\n{PROMPT}",
    ),
    "text-mode": (
        "%%chat in text mode writing to a StringIO (a terminal minus the terminal): the CPU floor",
        ("%load_ext shenma_magic", "%chat display text", WARM_UP),
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    get_ipython().run_cell_magic('chat', '--new', {PROMPT!r})\n",
    ),
    "naive": (
        "full Markdown re-sent per delta",
        (_CLIENT_SETUP,),
        """\
handle = display(Markdown(""), display_id=True)
text = ""
for delta in client.stream(messages, model="gpt-4o-mini"):
    if isinstance(delta, TextDelta):
        text += delta.text
        handle.update(Markdown(text))
""",
    ),
    "throttled": (
        "full Markdown re-sent, <= 1 per 50 ms",
        (_CLIENT_SETUP,),
        """\
handle = display(Markdown(""), display_id=True)
text = ""
last = 0.0
for delta in client.stream(messages, model="gpt-4o-mini"):
    if isinstance(delta, TextDelta):
        text += delta.text
        now = time.monotonic()
        if now - last >= 0.05:
            handle.update(Markdown(text))
            last = now
handle.update(Markdown(text))
""",
    ),
    "text": (
        "print(delta, flush=True): plain text floor",
        (_CLIENT_SETUP,),
        """\
for delta in client.stream(messages, model="gpt-4o-mini"):
    if isinstance(delta, TextDelta):
        print(delta.text, end="", flush=True)
""",
    ),
}


# --------------------------------------------------------------------------- collecting


@dataclass
class Message:
    msg_type: str
    json_bytes: int  # header + parent_header + metadata + content (+ buffers)
    wire_bytes: int  # every ZMQ frame
    t: float  # kernel header date minus the time the execute request was sent
    visible: bool  # changes what is shown (see is_visible)
    texty: bool  # holds the shape's marker (the reply's first words)
    kind: str  # msg_type, and for widget comm_msgs the state keys they carry


@dataclass
class Run:
    name: str
    messages: list[Message] = field(default_factory=list)
    other_parent: int = 0  # iopub messages for other requests seen meanwhile
    request_at: float | None = None  # HTTP request reached the relay (s after execute)
    relay_done: float | None = None  # relay wrote the last byte (s after execute, +- 10 ms)
    cpu: float | None = None  # kernel process CPU seconds (user + system) for the measured cell
    status: str = ""
    error: str = ""


def kernel_env(relay_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["SHENMA_BASE_URL"] = relay_url
    env["SHENMA_API_KEY"] = FAKE_KEY
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("SHENMA_MODEL", None)
    return env


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU of a process (all its threads), from /proc; None where that is unavailable."""
    if pid is None:
        return None
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def execute(
    kc: Any,
    code: str,
    *,
    relay: Relay | None = None,
    timeout: float = 600.0,
    marker: str = "",
    pid: int | None = None,
) -> Run:
    """Run ``code``; collect every iopub message of that request, raw, until the kernel is idle."""
    session = kc.session
    sock = kc.iopub_channel.socket
    while sock.poll(0):  # leftovers of earlier cells
        sock.recv_multipart()
    seen_requests = len(relay.chat_requests) if relay is not None else 0
    cpu_before = _cpu_seconds(pid)
    t_wall, t_mono = time.time(), time.monotonic()
    msg_id = kc.execute(code, store_history=True)
    raw: list[list[bytes]] = []
    run = Run(name="")
    deadline = t_mono + timeout
    while True:
        if relay is not None and run.relay_done is None:
            requests_now = relay.chat_requests[seen_requests:]
            if requests_now:
                req = requests_now[0]
                run.request_at = req.at - t_mono
                if req.outcome != "pending":
                    run.relay_done = time.monotonic() - t_mono
        if time.monotonic() > deadline:
            raise TimeoutError(f"no idle from the kernel within {timeout} s")
        if not sock.poll(10):
            continue
        frames = sock.recv_multipart()
        _idents, parts = session.feed_identities(frames)
        parent = json.loads(parts[2])
        if parent.get("msg_id") != msg_id:
            run.other_parent += 1
            continue
        raw.append(frames)
        header = json.loads(parts[1])
        if header["msg_type"] == "status" and json.loads(parts[4]).get("execution_state") == "idle":
            break
    cpu_after = _cpu_seconds(pid)
    if cpu_before is not None and cpu_after is not None:
        run.cpu = cpu_after - cpu_before
    if relay is not None and run.relay_done is None and len(relay.chat_requests) > seen_requests:
        req = relay.chat_requests[seen_requests]  # idle came first: the relay finished just before
        run.request_at = req.at - t_mono
        if relay.wait(lambda: req.outcome != "pending", timeout=2):
            run.relay_done = time.monotonic() - t_mono
    reply = kc.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=30)
    run.status = reply["content"]["status"]
    for frames in raw:
        _idents, parts = session.feed_identities(frames)
        msg = session.deserialize(parts, content=True)
        json_bytes = sum(len(p) for p in parts[1:])  # parts[0] is the HMAC signature
        date = msg["header"]["date"]
        kind = msg_type = msg["header"]["msg_type"]
        content = msg["content"]
        if msg_type == "comm_msg":  # split widget updates by the state keys they carry
            kind += "[" + ",".join(sorted(content.get("data", {}).get("state", {}))) + "]"
        visible = is_visible(msg_type, content)
        texty = visible and bool(marker) and marker in json.dumps(content, ensure_ascii=False)
        run.messages.append(
            Message(
                msg_type,
                json_bytes,
                sum(len(f) for f in frames),
                date.timestamp() - t_wall,
                visible,
                texty,
                kind,
            )
        )
        if msg_type == "error":
            run.error = "\n".join(content.get("traceback", [])) or content.get("evalue", "")
    raw.clear()
    if run.status != "ok" and not run.error:
        run.error = json.dumps(reply["content"])[:2000]
    return run


def _kernel_pid(km: Any) -> int | None:
    provisioner = getattr(km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    pid = getattr(process, "pid", None) or getattr(provisioner, "pid", None)
    return int(pid) if pid else None


def run_contestant(name: str, relay: Relay, shape: Shape, chunks: list[Any], env: dict[str, str]) -> Run:
    _desc, setups, cell = CONTESTANTS[name]
    km, kc = start_new_kernel(kernel_name="python3", env=env, startup_timeout=120)
    try:
        for setup in setups:  # unscripted chat requests get the relay's default (echo) answer
            first = execute(kc, setup)
            if first.status != "ok":
                raise RuntimeError(f"{name}: setup cell failed:\n{first.error}")
        relay.enqueue(Scripted(chunks=list(chunks)))
        run = execute(kc, cell, relay=relay, marker=shape.marker, pid=_kernel_pid(km))
        run.name = name
        return run
    finally:
        kc.stop_channels()
        km.shutdown_kernel()


# --------------------------------------------------------------------------- analysis


def is_visible(msg_type: str, content: dict[str, Any]) -> bool:
    if msg_type in ("display_data", "update_display_data", "stream", "execute_result", "clear_output"):
        return True
    if msg_type == "comm_msg":
        data = content.get("data", {})
        return data.get("method") == "update" and bool(VISIBLE_STATE & set(data.get("state", {})))
    return False


@dataclass
class Stats:
    name: str
    messages: int
    json_bytes: int
    wire_bytes: int
    visible: int
    rate_median: float
    rate_max: float
    burst_median: float  # the same, counting visible updates < BURST_GAP apart as one
    burst_max: float
    windows: int
    first_text: float | None
    total: float
    request_at: float | None
    relay_seconds: float | None
    by_type: dict[str, tuple[int, int]]
    cpu: float | None


def _rates(times: list[float], first: float) -> tuple[float, float, int]:
    """Median and max count per full 1-s window from ``first`` to the last time (or the mean rate)."""
    span = times[-1] - first
    windows = int(span)
    if windows >= 1:
        counts = [0] * windows
        for t in times:
            k = int(t - first)
            if k < windows:
                counts[k] += 1
        return float(statistics.median(counts)), float(max(counts)), windows
    rate = len(times) / span if span > 0 else 0.0
    return rate, rate, 0


def analyse(run: Run) -> Stats:
    msgs = run.messages
    visible = [m for m in msgs if m.visible]
    texty = [m for m in visible if m.texty]
    first = texty[0].t if texty else None
    rate_median = rate_max = burst_median = burst_max = 0.0
    windows = 0
    if first is not None:
        times = [m.t for m in visible if m.t >= first]
        rate_median, rate_max, windows = _rates(times, first)
        bursts = [t for i, t in enumerate(times) if i == 0 or t - times[i - 1] >= BURST_GAP]
        burst_median, burst_max, _ = _rates(bursts, first)
    by_type: dict[str, tuple[int, int]] = {}
    for m in msgs:
        n, b = by_type.get(m.kind, (0, 0))
        by_type[m.kind] = (n + 1, b + m.json_bytes)
    relay_seconds = None
    if run.relay_done is not None and run.request_at is not None:
        relay_seconds = run.relay_done - run.request_at
    return Stats(
        run.name,
        len(msgs),
        sum(m.json_bytes for m in msgs),
        sum(m.wire_bytes for m in msgs),
        len(visible),
        rate_median,
        rate_max,
        burst_median,
        burst_max,
        windows,
        first,
        max(m.t for m in msgs),
        run.request_at,
        relay_seconds,
        by_type,
        run.cpu,
    )


# --------------------------------------------------------------------------- the saved notebook


def check_saved_outputs(relay: Relay, chunks: list[Any], env: dict[str, str]) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext shenma_magic"),
        nbformat.v4.new_code_cell(f"%%chat\n{PROMPT}"),
    ]
    relay.enqueue(Scripted(chunks=list(chunks)))
    saved = {k: os.environ.get(k) for k in ("SHENMA_BASE_URL", "SHENMA_API_KEY", "PYTHONPATH")}
    os.environ.update({k: env[k] for k in saved})
    try:
        NotebookClient(
            nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(ROOT)}}
        ).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    outputs = nb.cells[1].outputs
    mimes = [sorted(o.get("data", {})) for o in outputs]
    widget_state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return {
        "outputs": [(o.output_type, sorted(o.get("data", {}))) for o in outputs],
        "markdown": any("text/markdown" in m for m in mimes),
        "html": any("text/html" in m for m in mimes),
        "widget_view": any(WIDGET_VIEW in m for m in mimes),
        "cell_output_bytes": len(json.dumps(outputs, ensure_ascii=False).encode()),
        "widget_models_saved": len(widget_state.get("state", {})),
        "widget_state_bytes": len(json.dumps(widget_state, ensure_ascii=False).encode()),
    }


# --------------------------------------------------------------------------- three models at once

THREE_MODELS = (("model-a", 0.5), ("model-b", 0.75), ("model-c", 1.0))  # name, share of --seconds


def run_three_models(relay: Relay, env: dict[str, str], chars: int, seconds: float, batch: int) -> int:
    """``%%chat -m model-a,model-b,model-c``: three replies of ``chars`` each (different text), streamed at
    once at different speeds; the budget is the one answer's, against the three replies' bytes together."""
    replies = [make_reply(chars, seed=20240601 + i) for i in range(len(THREE_MODELS))]
    total_bytes = sum(len(r.encode("utf-8")) for r in replies)
    km, kc = start_new_kernel(kernel_name="python3", env=env, startup_timeout=120)
    try:
        setup = execute(kc, "%load_ext shenma_magic")
        if setup.status != "ok":
            print(f"three models: setup failed:\n{setup.error}", file=sys.stderr)
            return 1
        for (model, share), reply in zip(THREE_MODELS, replies, strict=True):
            _deltas, chunks = reply_stream(reply, seconds * share, batch)
            relay.enqueue(Scripted(chunks=chunks, model=model))
        first_request = len(relay.chat_requests)
        cell = f"%%chat -m {','.join(m for m, _ in THREE_MODELS)}\n{PROMPT}"
        run = execute(kc, cell, relay=relay, marker=replies[0][2:4])
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
    if run.status != "ok":
        print(f"three models: the cell failed:\n{run.error}", file=sys.stderr)
        return 1
    run.name = "three"
    s = analyse(run)
    streams = relay.chat_requests[first_request:]
    spread = max(r.at for r in streams) - min(r.at for r in streams) if streams else float("nan")
    ratio = s.json_bytes / total_bytes
    slowest = max(share for _, share in THREE_MODELS) * seconds
    summed = sum(share for _, share in THREE_MODELS) * seconds
    print()
    print(
        f"three models at once: 3 replies x {chars:,} chars = {total_bytes:,} UTF-8 bytes, streams of "
        + ", ".join(f"{seconds * share:.1f} s" for _, share in THREE_MODELS)
        + f" (one after another: {summed:.1f} s)"
    )
    print(
        f"{'messages':>9}{'visible':>8}{'total KB':>10}{'xreplies':>9}{'upd/s med':>10}{'upd/s max':>10}"
        f"{'first text s':>13}{'total s':>8}{'requests spread s':>18}"
    )
    print(
        f"{s.messages:>9,}{s.visible:>8,}{s.json_bytes / 1024:>10,.1f}{ratio:>9.1f}{s.rate_median:>10.1f}"
        f"{s.rate_max:>10.1f}{_fmt(s.first_text, '>13.2f')}{s.total:>8.2f}{spread:>18.2f}"
    )
    checks = [
        ("live updates <= 20/s (max)", f"{s.rate_max:.1f}", s.rate_max <= 20),
        ("total bytes <= 20x replies' bytes", f"{ratio:.1f}x", ratio <= 20),
        (
            "total time < the streams one after another",
            f"{s.total:.2f} s",
            s.total < slowest + 0.5 * (summed - slowest),
        ),
    ]
    for label, value, ok in checks:
        print(f"  {label:<34}{value:>9}  {'met' if ok else 'NOT met'}")
    parts = ", ".join(f"{t} {n:,}/{b / 1024:,.1f}" for t, (n, b) in sorted(s.by_type.items()))
    print(f"  messages by type (count / KB): {parts}")
    return 0


# --------------------------------------------------------------------------- main


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000-char mixed reply over ~1 s")
    parser.add_argument("--chars", type=int, help="mixed reply length (default 20000, 2000 with --quick)")
    parser.add_argument("--seconds", type=float, help="mixed stream duration (default 8, 1 with --quick)")
    parser.add_argument("--batch", type=int, default=10, help="mixed: events per relay write (default 10)")
    parser.add_argument("--only", nargs="*", choices=list(CONTESTANTS), help="run only these contestants")
    parser.add_argument(
        "--shapes",
        nargs="*",
        default=["mixed"],
        choices=list(SHAPES),
        help="reply shapes (default: mixed); 'all' for every shape",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="size factor for the large shapes")
    parser.add_argument("--no-notebook", action="store_true", help="skip the nbclient saved-output check")
    parser.add_argument(
        "--three-models", action="store_true", help="also run %%%%chat -m a,b,c (three at once)"
    )
    args = parser.parse_args(argv)
    names = list(SHAPES)[1:] if "all" in args.shapes else args.shapes
    shapes = make_shapes(names, args.scale, args)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {_load()}; "
        f"kernel: python3 from {sys.prefix}"
    )
    failed = False
    results: list[tuple[Shape, int, list[Stats]]] = []
    notebook = None
    with Relay() as relay:
        env = kernel_env(relay.url)
        for shape in shapes:
            reply_bytes = len(shape.text.encode("utf-8"))
            n_deltas, chunks = reply_stream(shape.text, shape.seconds, shape.batch, shape.delta_chars)
            sleeps = [c for c in chunks if isinstance(c, float)]
            print(
                f"\nshape {shape.name}: {len(shape.text):,} chars = {reply_bytes:,} UTF-8 bytes, "
                f"{n_deltas:,} deltas of {shape.delta_chars} chars; relay: {shape.batch} events per write, "
                f"{sum(sleeps):.2f} s of sleeps"
            )
            default = list(CONTESTANTS) if shape.name == "mixed" else ["ours-warm", "text-mode"]
            stats: list[Stats] = []
            for name in args.only or default:
                print(f"running {name} ...", flush=True)
                run = run_contestant(name, relay, shape, chunks, env)
                if run.status != "ok":
                    failed = True
                    print(f"  {name}: the cell failed:\n{run.error}", file=sys.stderr)
                    continue
                if run.other_parent:
                    print(f"  note: {run.other_parent} iopub messages with another parent were ignored")
                stats.append(analyse(run))
                run.messages.clear()
            results.append((shape, reply_bytes, stats))
            if shape.name == "mixed" and not args.no_notebook:
                notebook = check_saved_outputs(relay, chunks, env)
        if args.three_models:
            chars = args.chars or (2000 if args.quick else 20000)
            seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 8.0)
            failed = run_three_models(relay, env, chars, seconds, args.batch) != 0 or failed
    print()
    print(f"load average at the end: {_load()}")
    for shape, reply_bytes, stats in results:
        report(shape, reply_bytes, stats)
    if notebook is not None:
        print()
        print("saved notebook (nbclient), %%chat cell outputs:", notebook["outputs"])
        print(
            f"  text/markdown: {notebook['markdown']}  text/html: {notebook['html']}  "
            f"widget view left: {notebook['widget_view']}  "
            f"cell outputs: {notebook['cell_output_bytes']:,} bytes"
        )
        print(
            f"  notebook metadata widget state: {notebook['widget_models_saved']} models, "
            f"{notebook['widget_state_bytes']:,} bytes"
        )
    summary(results)
    return 1 if failed else 0


def report(shape: Shape, reply_bytes: int, stats: list[Stats]) -> None:
    chars = len(shape.text)
    print()
    print(
        f"== shape {shape.name}: {chars:,} chars, {reply_bytes:,} UTF-8 bytes; "
        "xreply = total bytes / reply bytes"
    )
    head = (
        f"{'contestant':<11}{'messages':>9}{'visible':>8}{'total KB':>11}{'xreply':>8}"
        f"{'upd/s med':>10}{'upd/s max':>10}{'bursts/s':>10}{'first text s':>13}{'total s':>8}{'CPU s':>8}"
    )
    print(head)
    print("-" * len(head))
    for s in stats:
        print(
            f"{s.name:<11}{s.messages:>9,}{s.visible:>8,}{s.json_bytes / 1024:>11,.1f}"
            f"{s.json_bytes / reply_bytes:>8.1f}{s.rate_median:>10.1f}"
            f"{s.rate_max:>10.1f}{f'{s.burst_median:.0f}/{s.burst_max:.0f}':>10}"
            f"{_fmt(s.first_text, '>13.2f')}{s.total:>8.2f}{_fmt(s.cpu, '>8.2f')}"
        )
    print("timing detail (s after the execute request): HTTP request at the relay, relay stream duration")
    for s in stats:
        print(
            f"  {s.name:<10} request {_fmt(s.request_at, '.2f')}  relay stream {_fmt(s.relay_seconds, '.2f')}"
            f"  first text {_fmt(s.first_text, '.2f')}  idle {s.total:.2f}  ({s.windows} full 1-s windows)"
        )
    print("messages by type (count / KB):")
    for s in stats:
        parts = ", ".join(f"{t} {n:,}/{b / 1024:,.1f}" for t, (n, b) in sorted(s.by_type.items()))
        print(f"  {s.name:<10} {parts}")


def summary(results: list[tuple[Shape, int, list[Stats]]]) -> None:
    print()
    print("targets for ours-warm, per shape: <= 20x reply bytes, <= 2x the CPU of text-mode, 10-20 updates/s")
    head = (
        f"{'shape':<13}{'xreply':>8}{'CPU s':>8}{'text CPU s':>11}{'xCPU':>7}"
        f"{'upd/s med':>10}{'upd/s max':>10}  verdict"
    )
    print(head)
    print("-" * len(head))
    for shape, reply_bytes, stats in results:
        ours = next((s for s in stats if s.name == "ours-warm"), None)
        text = next((s for s in stats if s.name == "text-mode"), None)
        if ours is None:
            continue
        ratio = ours.json_bytes / reply_bytes
        xcpu = ours.cpu / text.cpu if ours.cpu is not None and text and text.cpu else None
        ok = ratio <= 20 and (xcpu is None or xcpu <= 2) and ours.rate_max <= 20
        ok = ok and (ours.windows == 0 or ours.rate_median >= 10)
        text_cpu = text.cpu if text else None
        print(
            f"{shape.name:<13}{ratio:>8.1f}{_fmt(ours.cpu, '>8.2f')}{_fmt(text_cpu, '>11.2f')}"
            f"{_fmt(xcpu, '>7.2f')}{ours.rate_median:>10.1f}{ours.rate_max:>10.1f}"
            f"  {'met' if ok else 'NOT met'}"
        )


SHAPES = {
    "all": "every shape below but mixed",
    "mixed": "the 20,000-char Markdown reply (prose, lists, code, a table) in 5-char deltas over 8 s",
    "one-line": "3 MB on one line (no newline at all), 20-char deltas over ~15 s",
    "tiny-deltas": "a 1,000,000-char Markdown reply in 1,000,000 one-character deltas over ~20 s",
    "table": "a 1 MB table (~17,000 rows), 10-char deltas over ~10 s",
    "code": "a 1 MB fenced Python block (~28,000 lines), 10-char deltas over ~10 s",
}


if __name__ == "__main__":
    sys.exit(main())
