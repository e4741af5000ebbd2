"""Rendering benchmark: the cost of render_html / safe_markdown / the terminal view, by reply shape.

Run from the repository root::

    .venv/bin/python bench/render_bench.py            # 0.5 MB and 1 MB per shape, 3 runs per cell
    .venv/bin/python bench/render_bench.py --quick    # 50 kB and 100 kB, 3 runs

For each shape at two sizes (the second twice the first) it prints CPU seconds (time.process_time,
median of the runs, gc disabled) of plain markdown-it-py (commonmark + table + strikethrough, the floor
every renderer on it pays), of ``render_html``, ``safe_markdown`` and the terminal view fed in 20-char
deltas; the ratio of ``render_html`` to the floor; the growth from the smaller to the larger size
(about 2 means linear; 4 would be quadratic); and the HTML's size relative to the reply.
This is a benchmark, not a test: it exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from markdown_it import MarkdownIt

from shenma_magic._models import TextDelta
from shenma_magic._render import render_html, safe_markdown
from shenma_magic._terminal import TextView


def _repeat(unit: str, size: int) -> str:
    return unit * max(1, size // len(unit))


SHAPES: dict[str, Callable[[int], str]] = {
    "prose paragraphs": lambda n: _repeat(
        "Some **bold** text, `code`, $x^2$ and a [link](https://e.x/a). 中文的句子也在这里。\n\n", n
    ),
    "one paragraph": lambda n: _repeat("word **b** `c` $x$ and more words here. ", n),
    "one line, no syntax": lambda n: _repeat("word ", n),
    "table rows": lambda n: "| a | b | c |\n|---|:-:|--:|\n" + _repeat("| cell | 123 | 中文 |\n", n),
    "python code blocks": lambda n: _repeat(
        "```python\n" + "def f(x):\n    return x + 1  # c\n" * 100 + "```\n\n", n
    ),
    "math": lambda n: _repeat("Let $a_i$ and \\(b^2\\) where\n\\[\n\\sum_i a_i < b\n\\]\n\n", n),
    "deep lists": lambda n: _repeat("".join("  " * i + f"- item {i}\n" for i in range(60)) + "\n", n),
    "unclosed \\[ lines": lambda n: _repeat("\\[ a\n", n),
    "unclosed $$ lines": lambda n: _repeat("$$a\n", n),
    "unclosed envs": lambda n: _repeat("\\begin{align}\n", n),
    "money $": lambda n: _repeat("$5 and $10 ", n),
    "images in a paragraph": lambda n: _repeat("![a](https://e.x/i.png) [![b](//e.x/b)](https://e.x) ", n),
    "brackets [[[": lambda n: "[" * (n // 2) + "]" * (n // 2),
}

_FLOOR = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])


def _terminal(text: str) -> None:
    view = TextView(io.StringIO())
    for i in range(0, len(text), 20):
        view.on_delta(TextDelta(text[i : i + 20]))


def _cpu(fn: Callable[[str], object], text: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            fn(text)
            times.append(time.process_time() - start)
        finally:
            gc.enable()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", help="run the shapes whose name contains this")
    args = parser.parse_args()
    small = 50_000 if args.quick else 500_000
    sizes = (small, 2 * small)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)")
    header = (
        f"{'shape':22} {'chars':>9} {'floor s':>8} {'html s':>8} {'md s':>8} {'term s':>8} "
        f"{'html/floor':>10} {'growth':>7} {'html/reply':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, make in SHAPES.items():
        if args.only and args.only not in name:
            continue
        previous = None
        for size in sizes:
            text = make(size)
            floor = _cpu(_FLOOR.render, text, args.runs)
            ours = _cpu(render_html, text, args.runs)
            md = _cpu(safe_markdown, text, args.runs)
            term = _cpu(_terminal, text, args.runs)
            growth = f"{ours / previous:7.2f}" if previous else " " * 7
            out = len(render_html(text)) / len(text)
            print(
                f"{name:22} {len(text):9d} {floor:8.3f} {ours:8.3f} {md:8.3f} {term:8.3f} "
                f"{ours / floor if floor else 0:10.2f} {growth} {out:10.1f}",
                flush=True,
            )
            previous = ours
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
