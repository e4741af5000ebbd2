"""Parsing benchmark: bytes of an OpenAI chat stream -> the answer text.

Run from the repository root::

    .venv/bin/python bench/parse_bench.py            # 1k / 10k / 100k events, ~2-3 min
    .venv/bin/python bench/parse_bench.py --quick    # 1k / 10k events, about 10 s

Contestants, all fed exactly the same bytes cut into exactly the same chunks, all checked to return
exactly the expected text (a contestant that raises or returns other text is reported, not timed):

    ours    shenma_magic SSEDecoder + ChunkDecoder, TextDelta texts joined
    docs    the 神马中转API docs' "Python 请求示例" loop (buffer += chunk.decode(); split("\\n", 1) ...)
    openai  openai-python's own openai._streaming.SSEDecoder.iter_bytes + json.loads
    floor   bare json.loads of the pre-extracted JSON payload strings: no framing, no decoding of bytes

Each cell is the median of several runs (time.perf_counter, gc disabled during every run of every
contestant). A run predicted (from the smaller sizes' scaling) to take longer than --timeout seconds is
skipped and its extrapolated time printed; a run that overruns anyway is stopped by SIGALRM.
This is a benchmark, not a test: it exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from shenma_magic._chunks import ChunkDecoder
from shenma_magic._models import TextDelta
from shenma_magic._sse import SSEDecoder

try:
    import openai
    from openai._streaming import SSEDecoder as OpenAISSEDecoder
except ImportError:  # pragma: no cover - the bench extra is not installed
    openai = None  # type: ignore[assignment]  # main() says to install it and stops
    OpenAISSEDecoder = None  # type: ignore[assignment,misc]  # likewise

# ---------------------------------------------------------------------------------------------- payload

# Token-sized pieces as a gpt-4o-mini answer in Chinese streams them: mostly 1-3 CJK characters, some
# ASCII words, punctuation, newlines, a quote to escape, and the odd 4-byte emoji.
_CJK = (
    "周树人",
    "和",
    "鲁迅",
    "是",
    "同一个",
    "人",
    "。",
    "，",
    "笔名",
    "他",
    "的",
    "弟弟",
    "周作人",
    "也是",
    "作家",
    "《",
    "狂人日记",
    "》",
    "发表",
    "于",
    "年",
    "中国",
    "现代",
    "文学",
    "：",
    "、",
)
_ASCII = (" the", " pen", " name", " Lu", " Xun", " (", ")", " 1918", ".", ",", " is", " and", "**", "- ")
_OTHER = ("\n", "\n\n", '"', "\\", "🙂", "…", " ", "\t")


def make_pieces(n: int, rng: random.Random) -> list[str]:
    pieces = []
    for _ in range(n):
        r = rng.random()
        if r < 0.62:
            pieces.append(rng.choice(_CJK))
        elif r < 0.92:
            pieces.append(rng.choice(_ASCII))
        else:
            pieces.append(rng.choice(_OTHER))
    return pieces


def make_stream(n: int, seed: int) -> tuple[bytes, list[str], str]:
    """The body of a chat stream with ``n`` content events, its JSON payload strings, and the answer."""
    rng = random.Random(seed)
    pieces = make_pieces(n, rng)
    ident = "chatcmpl-" + "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(29)
    )
    created = 1726000000 + rng.randrange(10_000_000)

    def chunk(delta: dict[str, str], finish: str | None) -> str:
        obj = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

    payloads = [chunk({"role": "assistant", "content": ""}, None)]
    payloads += [chunk({"content": p}, None) for p in pieces]
    payloads.append(chunk({}, "stop"))
    body = "".join(f"data: {p}\n\n" for p in payloads) + "data: [DONE]\n\n"
    return body.encode("utf-8"), payloads, "".join(pieces)


def cut_fixed(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def cut_random(body: bytes, seed: int, low: int = 1, high: int = 1400) -> list[bytes]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(body):
        step = rng.randint(low, high)
        out.append(body[i : i + step])
        i += step
    return out


def splits_inside_utf8(chunks: Sequence[bytes]) -> int:
    """How many chunk boundaries fall inside a multi-byte UTF-8 character."""
    return sum(1 for c in chunks[1:] if c and 0x80 <= c[0] <= 0xBF)


# ----------------------------------------------------------------------------------------- contestants


def run_ours(chunks: Iterable[bytes]) -> str:
    """The package's path, as _replydecode.decode_reply drives it."""
    sse = SSEDecoder()
    decoder = ChunkDecoder()
    out: list[str] = []
    for raw in chunks:
        for event in sse.feed(raw):
            for delta in decoder.decode(event):
                if isinstance(delta, TextDelta):
                    out.append(delta.text)
            if decoder.done:
                break
        if decoder.done:
            break
    return "".join(out)


def run_docs(chunks: Iterable[bytes]) -> str:
    """The vendor docs' loop, verbatim but for taking chunks and collecting instead of printing."""
    out: list[str] = []
    buffer = ""
    for chunk in chunks:
        if chunk:
            buffer += chunk.decode("utf-8")
            while "\n" in buffer:
                line, buffer = buffer.split("\n", 1)
                if not line.strip():  # 跳过空行
                    continue

                if line.startswith("data: "):
                    data_line = line[6:].strip()  # 去除"data: "前缀

                    if data_line == "[DONE]":  # 流式结束标记
                        break

                    try:
                        data = json.loads(data_line)
                        content = data["choices"][0]["delta"].get("content", "")
                        out.append(content)  # docs: print(content, end="", flush=True)
                    except json.JSONDecodeError:
                        # 处理不完整JSON数据
                        buffer = line + "\n" + buffer
                        break
    return "".join(out)


def run_openai(chunks: Iterable[bytes]) -> str:
    """openai-python's decoder, consumed the way openai.Stream.__stream__ consumes it."""
    out: list[str] = []
    loads = json.loads
    for sse in OpenAISSEDecoder().iter_bytes(iter(chunks)):
        if sse.data.startswith("[DONE]"):
            break
        data = loads(sse.data)
        content = data["choices"][0]["delta"].get("content", "")
        if content:
            out.append(content)
    return "".join(out)


def run_floor(payloads: Iterable[str]) -> str:
    """No framing at all: json.loads of the exact payload strings, same extraction."""
    out: list[str] = []
    loads = json.loads
    for payload in payloads:
        data = loads(payload)
        content = data["choices"][0]["delta"].get("content", "")
        if content:
            out.append(content)
    return "".join(out)


# ----------------------------------------------------------------------------------------------- timing


class _Overrun(Exception):
    pass


def _on_alarm(signum: int, frame: object) -> None:
    raise _Overrun


class Cell:
    """One table cell: a median time, or why there is none."""

    def __init__(self, note: str = "", estimate: float | None = None) -> None:
        self.times: list[float] = []
        self.note = note  # "" while the cell is live and timed
        self.estimate = estimate

    @property
    def seconds(self) -> float | None:
        return statistics.median(self.times) if self.times and not self.note else None

    def text(self, wanted_runs: int) -> str:
        if self.seconds is None:
            return self.note or "-"
        fewer = "" if len(self.times) >= wanted_runs else f" (n={len(self.times)})"
        return f"{self.seconds:.4f}{fewer}"


Input = TypeVar("Input")


def run_once(
    fn: Callable[[Input], str],
    arg: Input,
    expected: str,
    cell: Cell,
    timeout: float,
    check: bool,
) -> None:
    """One timed run into ``cell``; on an exception, overrun or wrong answer the cell gets a note instead."""
    use_alarm = hasattr(signal, "SIGALRM")
    gc.collect()
    gc.disable()
    if use_alarm:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        start = time.perf_counter()
        got = fn(arg)
        elapsed = time.perf_counter() - start
    except _Overrun:
        cell.note = f"timeout >{timeout:g}s"
        return
    except Exception as exc:
        cell.note = f"error: {type(exc).__name__}"
        return
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
        gc.enable()
    if check and got != expected:
        cell.note = "wrong"
        return
    cell.times.append(elapsed)


def predict(sizes: Sequence[int], cells: Sequence[Cell], n: int) -> float | None:
    """Extrapolate the time at size ``n`` from the last two measured sizes (exponent clamped to 1..2)."""
    known = [(s, t) for s, c in zip(sizes, cells, strict=False) if (t := c.seconds)]
    if not known:
        return None
    s1, t1 = known[-1]
    k = 1.0
    if len(known) >= 2:
        s0, t0 = known[-2]
        k = min(2.0, max(1.0, math.log(t1 / t0) / math.log(s1 / s0)))
    growth: float = (n / s1) ** k  # a float: both sides are positive (typeshed says Any for float ** float)
    return t1 * growth


# ------------------------------------------------------------------------------------------------- main


def _label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on Unix
        return "n/a"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1k and 10k events, 5 runs: about 10 s")
    ap.add_argument("--repeats", type=int, default=None, help="runs per cell (default 7, --quick 5)")
    ap.add_argument("--seed", type=int, default=20240917)
    ap.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="skip a run predicted to take longer than this, stop one that does "
        "(seconds; default 60, --quick 1)",
    )
    args = ap.parse_args(argv)

    if OpenAISSEDecoder is None:
        print("the openai package is missing: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    repeats = args.repeats or (5 if args.quick else 7)
    timeout = args.timeout or (1.0 if args.quick else 60.0)
    budget = 1.0 if args.quick else 20.0  # a cell stops taking runs once it has used this many seconds

    print(f"python   {platform.python_implementation()} {platform.python_version()} ({sys.executable})")
    print(
        f"machine  {platform.platform()} | {platform.machine()} | {os.cpu_count()} CPUs | "
        f"load avg at start {_loadavg()}"
    )
    print(f"openai   {openai.__version__} (openai._streaming.SSEDecoder.iter_bytes)")
    print(
        f"runs     median of up to {repeats} runs per cell, contestants interleaved round-robin, "
        f"gc disabled while timing, seed {args.seed}"
    )

    chunkings: list[tuple[str, Callable[[bytes], list[bytes]]]] = [
        ("1 chunk", lambda body: [body]),
        ("64 B", lambda body: cut_fixed(body, 64)),
        ("rand 1-1400 B", lambda body: cut_random(body, args.seed)),
    ]
    contestants: list[tuple[str, Callable[[Iterable[bytes]], str]]] = [
        ("ours", run_ours),
        ("openai", run_openai),
        ("docs", run_docs),
    ]
    keys = [(c, k) for c, _ in contestants for k, _ in chunkings] + [("floor", "(no framing)")]
    fns = dict(contestants)  # and run_floor, which takes the payloads rather than chunks
    grid: dict[tuple[str, str], list[Cell]] = {key: [] for key in keys}
    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, _on_alarm)

    for n in sizes:
        body, payloads, text = make_stream(n, args.seed)
        inputs = {k: cut(body) for k, cut in chunkings}
        print(
            f"payload  {_label(n):>4}: {len(body) / 1e6:6.2f} MB, {len(payloads) + 1} events, "
            f"{len(text)} chars; "
            + ", ".join(
                f"{k}: {len(inputs[k])} chunks ({splits_inside_utf8(inputs[k])} cut inside a UTF-8 char)"
                for k, _ in chunkings[1:]
            )
        )
        live = []
        for key in keys:
            cells = grid[key]
            guess = predict(sizes, cells, n)
            if cells and cells[-1].seconds is None:
                cells.append(Cell(note=cells[-1].note))  # broken at a smaller size: broken here too
            elif guess is not None and guess > timeout:
                cells.append(Cell(note=f"skip (~{guess:.0f}s est.)", estimate=guess))
            else:
                cells.append(Cell())
                live.append(key)
        for rep in range(repeats):
            for key in live:
                cell = grid[key][-1]
                if cell.note or sum(cell.times) > budget:
                    continue
                if key[0] == "floor":
                    run_once(run_floor, payloads, text, cell, timeout, check=rep == 0)
                else:
                    run_once(fns[key[0]], inputs[key[1]], text, cell, timeout, check=rep == 0)
        sys.stdout.flush()
        for key in keys:
            print(f"  {key[0]:<7}{key[1]:<15}{_label(n):>5}  {grid[key][-1].text(repeats)}", file=sys.stderr)
        sys.stderr.flush()
        del body, payloads, text, inputs
    print(f"         load avg at end {_loadavg()}")
    print()

    # -- the table
    big, small = _label(sizes[-1]), _label(sizes[-2])
    floor_last = grid[("floor", "(no framing)")][-1]

    def ratio(a: Cell, b: Cell | None) -> str:
        if b is None or a.seconds is None or b.seconds is None:
            return "-"
        return f"{a.seconds / b.seconds:.2f}x"

    head = (
        ["contestant", "chunking"]
        + [f"{_label(n)} s" for n in sizes]
        + [f"÷floor@{big}", f"÷openai@{big}", f"{big}/{small}"]
    )
    table = []
    for (cname, kname), cells in grid.items():
        last, prev = cells[-1], cells[-2]
        scale = ratio(last, prev)
        if last.seconds is None and last.estimate is not None and prev.seconds:
            scale = f"~{last.estimate / prev.seconds:.0f}x est."
        openai_cells = grid.get(("openai", kname))
        table.append(
            [cname, kname]
            + [c.text(repeats) for c in cells]
            + [ratio(last, floor_last), ratio(last, openai_cells[-1] if openai_cells else None), scale]
        )
    widths = [max(len(r[i]) for r in [head, *table]) for i in range(len(head))]
    for r in [head, ["-" * w for w in widths], *table]:
        cols = (x.ljust(w) if i < 2 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths, strict=False)))
        print("  ".join(cols).rstrip())
    print()

    # -- the targets, for ours
    grow = sizes[-1] / sizes[-2]
    print(f"targets for ours at {big}: {big}/{small} <= {1.2 * grow:g}x, ÷openai <= 1x, ÷floor <= 2x")
    for kname, _ in chunkings:
        cells = grid[("ours", kname)]
        last, prev = cells[-1], cells[-2]
        o, f = grid[("openai", kname)][-1].seconds, floor_last.seconds
        if last.seconds is None or prev.seconds is None or o is None or f is None:
            print(f"  {kname:<15}no verdict: a cell has no time")
            continue
        checks = [
            (f"{big}/{small}", last.seconds / prev.seconds, 1.2 * grow),
            ("÷openai", last.seconds / o, 1.0),
            ("÷floor", last.seconds / f, 2.0),
        ]
        print(
            f"  {kname:<15}"
            + "  |  ".join(
                f"{name} {value:.2f}x {'PASS' if value <= limit else 'MISS'}" for name, value, limit in checks
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
