"""Fixtures for the real-browser tests; the whole folder is skipped when Chromium or Playwright is missing."""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import CHROMIUM, LabPage, LabServer
from tests.relay import Relay

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parent / "artifacts" / "browser"
HARNESS_PROBE = "probe-value-42"  # an environment variable the kernels must inherit from the server


def browser_unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, or None if they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium); browser tests skipped"
    try:
        import playwright.sync_api  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        return f"playwright cannot be imported ({exc!r}); browser tests skipped"
    if not (Path(sys.executable).parent / "jupyter-lab").exists():
        return f"jupyter-lab is not installed next to {sys.executable}; browser tests skipped"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = browser_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """When a browser test fails, screenshot every open LabPage into the artifacts dir and print its state."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed or HERE not in Path(item.path).resolve().parents:
        return
    for n, page in enumerate(list(LabPage.open_pages)):
        shot = ARTIFACTS / f"FAILED-{item.name}-{n}.png"
        try:
            page.screenshot(shot)
            report.sections.append((f"browser page {n}", f"screenshot: {shot}\nstate: {page.debug_state()}"))
        except Exception as exc:  # the page may be gone; the report must still be written
            report.sections.append((f"browser page {n}", f"no screenshot: {exc!r}"))


@pytest.fixture(scope="session")
def browser_artifacts_dir() -> Path:
    """tests/artifacts/browser/ (gitignored): screenshots and other things to look at after a run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def lab_server_factory() -> Iterator[Callable[..., LabServer]]:
    """Start ``LabServer(env=..., **kwargs)`` servers; all are stopped after the test, pass or fail."""
    servers: list[LabServer] = []

    def make(env: Mapping[str, str] | None = None, **kwargs: Any) -> LabServer:
        server = LabServer(env, **kwargs)
        servers.append(server)
        return server.__enter__()

    yield make
    for server in reversed(servers):
        server.stop()


@pytest.fixture(scope="module")
def lab_server() -> Iterator[LabServer]:
    """One plain server (no extra environment) shared by the tests of a module."""
    with LabServer() as server:
        yield server


@pytest.fixture
def lab_page_factory() -> Iterator[Callable[..., LabPage]]:
    """Open ``LabPage(server, **kwargs)`` browsers (each a fresh profile); all are closed after the test."""
    pages: list[LabPage] = []

    def make(server: LabServer, **kwargs: Any) -> LabPage:
        page = LabPage(server, **kwargs)
        pages.append(page)
        return page

    yield make
    for page in reversed(pages):
        page.close()


@pytest.fixture(scope="module")
def lab_page(lab_server: LabServer) -> Iterator[LabPage]:
    """One browser on `lab_server` shared by the tests of a module: ``lab_page.open(name)`` opens further
    notebooks inside the already loaded JupyterLab, which is much faster than a fresh page."""
    page = LabPage(lab_server)
    try:
        yield page
    finally:
        page.close()


# One relay, one JupyterLab and one browser tab serve the whole browser suite (starting them is most of
# its time); every test opens its own notebook, with its own kernel, inside the loaded app.


@pytest.fixture(scope="package")
def relay() -> Iterator[Relay]:
    """The relay runs in this process; kernels reach it over TCP on 127.0.0.1."""
    with Relay() as r:
        yield r


@pytest.fixture(scope="package")
def server(relay: Relay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    env = {
        "SHENMA_BASE_URL": relay.url,
        "SHENMA_API_KEY": "sk-browser-test-0000000000000000fake",
        "XDG_CONFIG_HOME": str(tmp_path_factory.mktemp("xdg-config")),
        "HARNESS_PROBE": HARNESS_PROBE,
    }
    with LabServer(env=env) as srv:
        yield srv


@pytest.fixture(scope="package")
def page(server: LabServer) -> Iterator[LabPage]:
    with LabPage(server) as pg:
        yield pg
