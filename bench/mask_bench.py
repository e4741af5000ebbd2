"""What masking known keys at the screen costs: render_html / safe_markdown / terminal_safe of a 100 kB
reply with no key known, and with one session key known (what ``_secret.mask_known`` adds).

    .venv/bin/python bench/mask_bench.py [--repeats N]

Prints medians in milliseconds and the ratio keyed / no key. Not a test: always exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from shenma_magic import _secret
from shenma_magic._markdown import render_html
from shenma_magic._mdsafe import safe_markdown
from shenma_magic._termtext import terminal_safe


def _reply(size: int) -> str:
    para = (
        "周树人和鲁迅是同一个人。The **answer** has `code`, a [link](https://example.com/a) and $x^2$.\n"
        "- item one with sk-notakey text\n- item two 1234567890\n\n"
        "```python\nprint('hello world')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    )
    return (para * (size // len(para) + 1))[:size]


def _median(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


class _Holder:
    def keys(self) -> list[str]:
        return ["sk-BENCHKEY0123456789abcdefghijklmnop"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    for var in _secret._KEY_VARIABLES:
        os.environ.pop(var, None)
    text = _reply(100_000)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("render_html", lambda: render_html(text)),
        ("safe_markdown", lambda: safe_markdown(text)),
        ("terminal_safe", lambda: terminal_safe(text)),
    ]
    plain = {name: _median(fn, args.repeats) for name, fn in cases}
    holder = _Holder()
    _secret.register_key_source(holder.keys)
    keyed = {name: _median(fn, args.repeats) for name, fn in cases}
    print(f"{'100 kB reply':<16}{'no key ms':>12}{'1 key ms':>12}{'ratio':>8}")
    for name, _ in cases:
        print(f"{name:<16}{plain[name]:>12.2f}{keyed[name]:>12.2f}{keyed[name] / plain[name]:>8.2f}")


if __name__ == "__main__":
    main()
