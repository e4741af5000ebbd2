"""What ``%load_ext shenma_magic`` costs at startup, and what it must not import.

Run from the repository root::

    .venv/bin/python bench/load_bench.py              # 15 rounds
    .venv/bin/python bench/load_bench.py --rounds 5   # quicker

Start-up: each variant is a fresh ``.venv/bin/ipython --quick -c CODE`` process (terminal IPython, no
config files, a throw-away IPYTHONDIR; the same IPython core a kernel runs), timed from spawn to exit.
The variants run in turn, round after round (so drift hits all of them alike), after two unmeasured
warm-up rounds (page cache, .pyc files):

    bare        pass
    load_ext    %load_ext shenma_magic
    +requests   import requests                       (for comparison)
    +ipywidgets import ipywidgets                     (for comparison)
    first chat  %load_ext shenma_magic, then the imports the first %%chat adds (requests, markdown_it,
                the renderer): what a kernel pays once, when the first reply is shown

Each process also times its own action with time.perf_counter (the "in-process" column), which is
free of process start-up noise. "added" is the median over rounds of (variant - bare) in the same round.

Then: ``python -X importtime`` for ``import shenma_magic; shenma_magic.load_ipython_extension(shell)``
after IPython's InteractiveShell is already imported (its top contributors), and ``sys.modules`` after
``%load_ext`` in terminal IPython and in a real ipykernel: requests, ipywidgets and markdown_it must not
be there. This is a benchmark, not a test: it exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HEAVY = ("requests", "ipywidgets", "markdown_it")
TARGET = 0.15  # seconds %load_ext may add

_TIMED = "import time as _t; _s = _t.perf_counter(); {action}; print('@@', _t.perf_counter() - _s)"
VARIANTS: dict[str, str] = {
    "bare": "pass",
    "load_ext": "get_ipython().run_line_magic('load_ext', 'shenma_magic')",
    "+requests": "import requests",
    "+ipywidgets": "import ipywidgets",
    "first chat": (
        "get_ipython().run_line_magic('load_ext', 'shenma_magic'); "
        "import requests, markdown_it; "
        "from shenma_magic._render import render_html; render_html('x')"
    ),
}
_MEMBERSHIP = "' '.join(m + '=' + str(m in sys.modules) for m in " + repr(HEAVY) + ")"
_CHECK = (
    "import sys; get_ipython().run_line_magic('load_ext', 'shenma_magic'); print('@@', " + _MEMBERSHIP + ")"
)


def env_for(ipython_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["IPYTHONDIR"] = ipython_dir
    env.pop("PYTHONSTARTUP", None)
    return env


def run_ipython(code: str, env: dict[str, str]) -> tuple[float, str]:
    """Wall time of one ``ipython --quick -c code`` process, and what it printed after "@@"."""
    start = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "ipython"), "--quick", "--no-banner", "-c", code],
        env=env,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0 or "@@" not in done.stdout:
        raise RuntimeError(f"ipython -c {code!r} failed:\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout.split("@@", 1)[1].strip()


def _progress(text: str) -> None:
    """Rewritten in place on a terminal; one line each where \\r would not rewrite (a log, a pipe)."""
    if sys.stderr.isatty():
        print(f"\r{text}", end="", file=sys.stderr, flush=True)
    else:
        print(text, file=sys.stderr, flush=True)


def startup(rounds: int, env: dict[str, str]) -> None:
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    inner: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for r in range(rounds + 2):
        for name, action in VARIANTS.items():
            wall, out = run_ipython(_TIMED.format(action=action), env)
            if r >= 2:  # two warm-up rounds
                walls[name].append(wall)
                inner[name].append(float(out))
        _progress(f"round {r + 1}/{rounds + 2}")
    if sys.stderr.isatty():
        print(file=sys.stderr)
    bare = walls["bare"]
    print(f"start-up, {rounds} rounds (medians; fresh `ipython --quick -c ...` each)")
    head = f"{'variant':<13}{'wall s':>9}{'added s':>10}{'in-process s':>14}{'min..max wall':>17}"
    print(head)
    print("-" * len(head))
    for name in VARIANTS:
        w = walls[name]
        added = statistics.median(a - b for a, b in zip(w, bare, strict=True)) if name != "bare" else 0.0
        print(
            f"{name:<13}{statistics.median(w):>9.3f}{added:>+10.3f}{statistics.median(inner[name]):>14.4f}"
            f"{f'{min(w):.3f}..{max(w):.3f}':>17}"
        )
    added = statistics.median(a - b for a, b in zip(walls["load_ext"], bare, strict=True))
    own = statistics.median(inner["load_ext"])
    verdict = "met" if max(added, own) <= TARGET else "NOT met"
    print(
        f"target: %load_ext adds <= {TARGET} s: {verdict} "
        f"(wall {added * 1000:+.0f} ms, in-process {own * 1000:.0f} ms)"
    )


_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def importtime(env: dict[str, str], top: int = 12, runs: int = 5) -> None:
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "sys.stderr.write('@@MARK@@\\n'); sys.stderr.flush()\n"
        "import shenma_magic\n"
        "shenma_magic.load_ipython_extension(shell)\n"
    )
    best: list[tuple[int, int, int, str]] = []
    for _ in range(runs):  # keep the fastest run: the least disturbed by the rest of the machine
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            env=env,
            cwd=tempfile.gettempdir(),
            capture_output=True,
            text=True,
            check=True,
        )
        rows = []
        for line in done.stderr.split("@@MARK@@", 1)[1].splitlines():
            m = _LINE.match(line)
            if m:
                rows.append((int(m.group(1)), int(m.group(2)), len(m.group(3)) // 2, m.group(4)))
        if not best or sum(r[0] for r in rows) < sum(r[0] for r in best):
            best = rows
    rows = best
    total = sum(r[0] for r in rows)
    print()
    print(
        f"python -X importtime: import shenma_magic + load_ipython_extension(shell), IPython already "
        f"imported: {len(rows)} new modules, {total / 1000:.1f} ms of import time (fastest of {runs} runs)"
    )
    print(f"  top {top} by self time:")
    for self_us, cum_us, _depth, name in sorted(rows, reverse=True)[:top]:
        print(f"    {self_us / 1000:7.2f} ms self {cum_us / 1000:8.2f} ms cumulative  {name}")
    outer = [r for r in rows if r[2] == 0]
    print("  imported directly (cumulative):")
    for _self_us, cum_us, _depth, name in sorted(outer, key=lambda r: -r[1])[:top]:
        print(f"    {cum_us / 1000:8.2f} ms  {name}")


def modules_check(env: dict[str, str]) -> None:
    print()
    _, out = run_ipython(_CHECK, env)
    print(f"sys.modules after %load_ext, terminal IPython: {out}")
    _, base = run_ipython("import sys; print('@@', " + _MEMBERSHIP + ")", env)
    print(f"                 (bare terminal IPython:        {base})")

    from jupyter_client.manager import KernelManager

    # IPC, not TCP: the kernel talks to this process only, and does not warn that TCP is unencrypted.
    km = KernelManager(kernel_name="python3", transport="ipc")
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        lines: list[str] = []

        def keep(msg: dict[str, Any]) -> None:
            if msg["header"]["msg_type"] == "stream":
                lines.append(msg["content"]["text"])

        code = (
            "import sys, time\n"
            f"before = {_MEMBERSHIP}\n"
            "t = time.perf_counter()\n"
            "get_ipython().run_line_magic('load_ext', 'shenma_magic')\n"
            "took = time.perf_counter() - t\n"
            f"after = {_MEMBERSHIP}\n"
            "print(f'@@ before: {before} | after: {after} | load_ext {took * 1000:.1f} ms')\n"
        )
        kc.execute_interactive(code, output_hook=keep, timeout=60)
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
    text = "".join(lines)
    print(f"sys.modules in a fresh ipykernel (one run): {text.split('@@', 1)[-1].strip()}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds (default 15)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="load-bench-ipython-") as ipython_dir:
        env = env_for(ipython_dir)
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {BIN / 'ipython'}, "
            f"load average {_load()}"
        )
        startup(args.rounds, env)
        importtime(env)
        modules_check(env)
    print(f"load average at the end: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
