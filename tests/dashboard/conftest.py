"""Browser tests of the dashboard: Playwright driving Debian's chromium against one real `dlserve serve`
(API and training worker) shared by the whole folder, with one browser; each test gets a fresh browser
context (its own cookies). Every page a test opens fails the test on any console error or page error, and
is saved as a screenshot under $DLSERVE_SCREENSHOTS (default var/screenshots/).

Under CI=true a missing browser or Playwright fails these tests instead of skipping them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import root_path
from tests.dashboard import families
from tests.dashboard.stack import ADMIN_KEY, Api, serve

CHROMIUM = os.environ.get("DLSERVE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(os.environ.get("DLSERVE_SCREENSHOTS") or root_path() / "var" / "screenshots")


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{why}; under CI=true the browser tests must run (.ci/run installs chromium)")
    pytest.skip(why)


@dataclass
class Stack:
    url: str
    api: Api
    home: Path
    keys: dict[str, str] = field(default_factory=dict)  # name -> key
    training: dict[str, str] = field(default_factory=dict)  # task -> id of its try-it job

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.home / 'dlserve.db'}"


@pytest.fixture(scope="package")
def stack(tmp_path_factory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("dashboard")
    with serve(home) as url:
        api = Api(url)
        s = Stack(url, api, home)
        s.keys["admin"] = api.key(["admin"], "Ada (admin)")
        s.keys["read"] = api.key(["read"], "Rita (read only)")
        # Submitted first, trained by the worker in the background while the first tests run
        s.training = families.start_all(api)
        yield s


@pytest.fixture(scope="package")
def trained(stack) -> dict[str, dict]:
    """{task: its finished job}: a production version of try-<task> for every family."""
    return {task: stack.api.wait(job_id) for task, job_id in stack.training.items()}


@pytest.fixture(scope="package")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (it is in the dev extras)")
    if not os.path.exists(CHROMIUM):
        _unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Pages:
    """Opens pages for a test, watching each for console and page errors."""

    def __init__(self, browser, stack: Stack, name: str):
        self.browser, self.stack, self.name = browser, stack, name
        self.contexts, self.errors, self.pages = [], [], []
        self.allowed: list[re.Pattern] = []

    def open(self, path: str = "/", key: str | None = "admin", color_scheme: str = "light", **context):
        ctx = self.browser.new_context(base_url=self.stack.url, viewport={"width": 1280, "height": 900},
                                       color_scheme=color_scheme, **context)
        self.contexts.append(ctx)
        if key:
            r = ctx.request.post("/v1/session", data={"key": self.stack.keys.get(key, key)})
            assert r.status == 201, r.text()
        page = ctx.new_page()
        page.set_default_timeout(20_000)
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console error on {page.url}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"page error on {page.url}: {e}"))
        self.pages.append(page)
        if path is not None:
            page.goto(path)
        return page

    def allow(self, pattern: str) -> None:
        """An error this test provokes on purpose (a refused submit shows as a failed request)."""
        self.allowed.append(re.compile(pattern))

    def shot(self, page, suffix: str = "") -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("() => window.scrollTo(0, 0)")  # the sticky header where it belongs in a full-page shot
        page.screenshot(path=str(SHOTS / f"{self.name}{suffix}.png"), full_page=True)

    def close(self) -> list[str]:
        for i, page in enumerate(self.pages):
            if not page.is_closed():
                try:
                    self.shot(page, "" if i == 0 else f"-{i}")
                except Exception as e:  # noqa: BLE001 - a failed screenshot must not hide the test's own result
                    self.errors.append(f"screenshot failed: {e}")
        for ctx in self.contexts:
            ctx.close()
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def pages(browser, stack, request) -> Iterator[Pages]:
    p = Pages(browser, stack, request.node.name.removeprefix("test_"))
    yield p
    errors = p.close()
    assert not errors, "\n".join(errors)


@pytest.fixture
def api(stack) -> Api:
    return stack.api


__all__ = ["ADMIN_KEY"]
