"""Batch benchmark: ``shenma_magic.map`` at the relay's pace, its CPU per request, its memory at 100k rows.

Run from the repository root::

    .venv/bin/python bench/batch_bench.py          # latency 0.5 s, 8 rows per slot, 3 runs; 100k rows
    .venv/bin/python bench/batch_bench.py --quick  # 1 run, 4 rows per slot; 20k rows for memory

Throughput: a :class:`tests.pacedrelay.PacedRelay` runs in a process of its own (so its CPU is not the
client's) and answers every request in ``--latency`` seconds (an SSE stream of a few words spread over that
time). For each concurrency C, ``map`` sends ``rounds × C`` rows; the ideal wall time is
``rows × latency / C``. Reported: the median wall time and its ratio to the ideal (the target is ≤ 1.2),
the peak concurrency the server counted, and the client's CPU time (all its threads, from
``time.process_time``) per request. "served in" is the relay's own mean time per answer (its timers run
late on a busy machine) and "wall/served" the ratio to ``rows × served / C``: what is left is the client's.
``cache=False`` there: every row is sent.

Memory: a child process maps N rows (default 100,000) through the real scheduler, store and display
(``cache=True``, a fresh store under a temporary ``XDG_DATA_HOME``, ``progress=True`` to a pipe) with a fake
stream source in place of HTTP (each row answered at once by its echo), and reports its peak RSS
(``VmHWM``) against a run of 1,000 rows: the growth per row is what the answers themselves take.
This is a benchmark, not a test: it exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _start_relay(latency: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.pacedrelay", "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    return process, url


def _stats(url: str, action: str = "_stats") -> dict[str, Any]:
    base = url.rsplit("/v1", 1)[0]
    data = b"" if action == "_reset" else None
    with _NO_PROXY.open(urllib.request.Request(f"{base}/{action}", data=data), timeout=10) as response:
        result: dict[str, Any] = json.load(response)
    return result


def throughput(latency: float, rounds: int, runs: int) -> list[list[str]]:
    from shenma_magic import Session
    from shenma_magic._keys import KeyStore

    process, url = _start_relay(latency)
    table = []
    try:
        folder = Path(tempfile.mkdtemp(prefix="batch-bench-"))
        session = Session(
            base_url=url, api_key="sk-bench0123456789abcdefghijkl", keys=KeyStore(folder / "k.json")
        )
        session.map("{}", ["warm up"], progress=False, cache=False)
        for concurrency in (16, 64):
            rows = rounds * concurrency
            data = [f"row {i} of the benchmark" for i in range(rows)]
            walls, cpus, peaks, served = [], [], [], []
            for _ in range(runs):
                _stats(url, "_reset")
                cpu0, wall0 = time.process_time(), time.perf_counter()
                out = session.map("Echo {}", data, concurrency=concurrency, progress=False, cache=False)
                walls.append(time.perf_counter() - wall0)
                cpus.append(time.process_time() - cpu0)
                stats = _stats(url)
                peaks.append(stats["peak"])
                served.append(stats["mean_service_seconds"])
                assert all(r.complete for r in out), "a row failed"
            ideal = rows * latency / concurrency
            wall = statistics.median(walls)
            # What the relay really took per answer (its timers run late on a busy machine): the best
            # the client could do is rows × that / concurrency.
            floor = rows * statistics.median(served) / concurrency
            table.append(
                [
                    str(concurrency),
                    f"{rows:,}",
                    f"{latency:g}",
                    f"{ideal:.2f}",
                    f"{wall:.2f}",
                    f"{wall / ideal:.2f}",
                    f"{statistics.median(served):.3f}",
                    f"{wall / floor:.2f}",
                    str(max(peaks)),
                    f"{statistics.median(cpus) / rows * 1000:.2f}",
                ]
            )
    finally:
        process.terminate()
        process.wait(timeout=10)
    return table


_MEMORY_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from shenma_magic import Session
    from shenma_magic._batch import run_map
    from shenma_magic._models import FinishDelta, TextDelta, UsageDelta

    def send(messages):
        text = messages[-1]["content"]
        yield TextDelta("echo: " + text)
        yield FinishDelta("stop")
        yield UsageDelta({"prompt_tokens": 5, "completion_tokens": 6})

    def status(field):  # kB; VmHWM is this process's own peak (ru_maxrss keeps the parent's across exec)
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    rows = int(sys.argv[1])
    session = Session(base_url="http://127.0.0.1:9/v1")
    before = status("VmHWM")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = run_map(session, "Label review number {}", range(rows), concurrency=64, send=send)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    assert len(out) == rows and all(r.complete for r in out)
    peak = status("VmHWM")

    def size(reply):  # what one answer holds: the text, its attributes, their dicts and lists
        own = [reply, reply.__dict__, reply.usage, reply.notices, reply.tool_calls]
        return sum(sys.getsizeof(part) for part in own if part is not None)

    answers = sum(size(r) for r in out) + sys.getsizeof(out)
    print(json.dumps({"rows": rows, "before_kb": before, "peak_kb": peak, "wall": wall, "cpu": cpu,
                      "answers_bytes": answers}))
    """
)


def memory(sizes: list[int]) -> list[dict[str, Any]]:
    results = []
    for rows in sizes:
        env = {
            **os.environ,
            "XDG_DATA_HOME": tempfile.mkdtemp(prefix="batch-bench-data-"),
            "PYTHONPATH": str(ROOT),
        }
        done = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, str(rows)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        results[-1]["summary"] = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    return results


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=None, help="rows per concurrency slot (default 8)")
    parser.add_argument("--runs", type=int, default=None, help="runs per cell (default 3, --quick 1)")
    parser.add_argument("--rows", type=int, default=None, help="rows for the memory run (default 100,000)")
    args = parser.parse_args()
    rounds = args.rounds or (4 if args.quick else 8)
    runs = args.runs or (1 if args.quick else 3)
    big = args.rows or (20_000 if args.quick else 100_000)
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)\n")

    print(f"Throughput against a relay answering in {args.latency:g} s (median of {runs}):\n")
    table = throughput(args.latency, rounds, runs)
    _print_table(
        [
            "concurrency",
            "rows",
            "latency s",
            "ideal s",
            "wall s",
            "wall/ideal",
            "served in s",
            "wall/served",
            "peak",
            "client CPU ms/request",
        ],
        table,
    )

    print(f"\nMemory: {big:,} rows through the scheduler and the store (fake stream source):\n")
    results = memory([1_000, big])
    base, large = results
    rows = []
    for r in results:
        rows.append(
            [
                f"{r['rows']:,}",
                f"{r['peak_kb'] / 1024:.1f}",
                f"{(r['peak_kb'] - r['before_kb']) / 1024:.1f}",
                f"{r['wall']:.1f}",
                f"{r['rows'] / r['wall']:,.0f}",
                f"{r['cpu'] / r['rows'] * 1000:.3f}",
            ]
        )
    _print_table(["rows", "peak RSS MB", "growth MB", "wall s", "rows/s", "CPU ms/row"], rows)
    per_row = (large["peak_kb"] - base["peak_kb"]) * 1024 / (large["rows"] - base["rows"])
    answer = (large["answers_bytes"] - base["answers_bytes"]) / (large["rows"] - base["rows"])
    print(
        f"\npeak RSS growth per row: {per_row:,.0f} bytes; the returned answers themselves hold "
        f"{answer:,.0f} bytes per row (sys.getsizeof of each Reply, its __dict__, usage and lists)"
    )
    print(f"summary line of the big run: {large['summary']}")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
