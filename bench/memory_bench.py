"""Peak memory of one reply from a hostile server that never stops sending.

Each attack runs in a fresh child process (so one peak does not hide another): a hostile server on
127.0.0.1 (tests/hostile.py, in the parent) streams a body that never ends, the child reads it with
``ChatClient`` at its default limits, and reports its peak RSS (``VmHWM``), the time taken and the
error line. The child runs under an address-space cap (``RLIMIT_AS``) so a regression fails fast instead
of eating the machine.

    .venv/bin/python bench/memory_bench.py            # every attack, default 32 MiB reply limit
    .venv/bin/python bench/memory_bench.py --limit-mb 8

Attacks: a body with no newline at all; ``data:`` lines without the blank line that ends an event; the
first one gzip-compressed (a decompression bomb: each 256 MiB member is ~250 KiB on the wire, repeated
forever); an endless JSON answer (the non-streamed path).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import hostile  # noqa: E402

ATTACKS = {
    "no newline": lambda: hostile.endless(b"x" * 65536),
    "data: lines, no blank line": lambda: hostile.endless(b"data: x\n" * 4096),
    "gzip bomb (no newline)": lambda: hostile.gzip_bomb(256 * 1024 * 1024),
    "endless JSON answer": lambda: hostile.endless(
        b"a" * 65536, first=b'{"choices": [{"message": {"content": "'
    ),
}

# What the child runs: import, measure the baseline, read one reply, report.
_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    cap = int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from shenma_magic import ChatClient, ShenmaError
    kw = {} if sys.argv[2] == "0" else {"max_reply_bytes": int(sys.argv[2])}
    client = ChatClient(sys.argv[1], "sk-MEMORYBENCH000000000000000000", max_retries=0, **kw)

    def peak_kb():
        # VmHWM is this process image's own high-water mark; ru_maxrss would also count the parent's
        # pages from before exec (Linux keeps it across fork and exec).
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    base = peak_kb()
    start = time.monotonic()
    error, chars = "", 0
    try:
        for delta in client.stream([{"role": "user", "content": "hi"}]):
            chars += len(getattr(delta, "text", "") or "")
    except ShenmaError as exc:
        error = f"{type(exc).__name__}: {exc}"
    peak = peak_kb()
    print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024, "seconds": time.monotonic() - start,
                      "error": error, "partial_chars": chars}))
    """
)


def measure(name: str, *, limit_bytes: int = 0, cap_mb: int = 1024, timeout: float = 120.0) -> dict[str, Any]:
    """Run attack ``name`` against a child process; returns its report (peak_mb, error, seconds...)."""
    with hostile.RawServer(ATTACKS[name]()) as server:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, server.url, str(limit_bytes), str(cap_mb * 1024 * 1024)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
    if done.returncode != 0 or not done.stdout.strip():
        return {
            "peak_mb": float("nan"),
            "error": f"child failed: {done.stderr.strip()[-300:]}",
            "seconds": 0.0,
        }
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit-mb", type=int, default=0, help="max_reply_bytes in MiB (0: the default)")
    parser.add_argument("--cap-mb", type=int, default=1024, help="the child's address-space cap")
    args = parser.parse_args(argv)
    limit = args.limit_mb * 1024 * 1024
    print(f"reply limit: {args.limit_mb or 'default (32)'} MiB; child address-space cap {args.cap_mb} MiB")
    print(f"{'attack':<28} {'baseline MB':>11} {'peak MB':>8} {'growth MB':>9} {'seconds':>8}  error line")
    for name in ATTACKS:
        started = time.monotonic()
        r = measure(name, limit_bytes=limit, cap_mb=args.cap_mb)
        growth = r["peak_mb"] - r.get("base_mb", float("nan"))
        print(
            f"{name:<28} {r.get('base_mb', float('nan')):>11.1f} {r['peak_mb']:>8.1f} {growth:>9.1f} "
            f"{r.get('seconds', time.monotonic() - started):>8.2f}  {r['error'][:90]}"
        )


if __name__ == "__main__":
    main()
