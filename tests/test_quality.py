"""The code checks the README promises: ruff and strict mypy over the package, its tests and benchmarks,
and a typed package.

Without ruff or mypy these skip on a developer's machine, but fail in CI (``CI`` set, as .ci/run and
every CI service set it): a check that cannot run there must not pass silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / tool
    if not exe.exists():
        missing = f"{tool} is not installed in this environment (bash .ci/setup test installs it)"
        if in_ci():
            pytest.fail(f"{missing}; in CI the quality checks must run")
        pytest.skip(missing)
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_lint() -> None:
    result = run("ruff", "check", "shenma_magic", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run("ruff", "format", "--check", "shenma_magic", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    # One run over all three (pyproject's [tool.mypy] settings apply): the tests and benchmarks are
    # checked as strictly as the package, so a helper's or fixture's types cannot drift from the code.
    result = run("mypy", "shenma_magic", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_is_typed() -> None:
    assert (ROOT / "shenma_magic" / "py.typed").exists()


def test_a_missing_tool_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, outcome in (
        ("true", pytest.fail.Exception),
        ("1", pytest.fail.Exception),
        ("", pytest.skip.Exception),
    ):
        monkeypatch.setenv("CI", value)
        with pytest.raises(outcome):
            run("no-such-tool-for-this-test")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        run("no-such-tool-for-this-test")
