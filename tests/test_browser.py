"""A real browser: Playwright drives Debian's headless Chromium against the app started with
`interviewer app` on 127.0.0.1. Answers one question and checks the feedback card appears."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.support.local import CHROMIUM, CHROMIUM_FLAGS, free_port

from .conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def running_app(settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "INTERVIEWER_DATA_DIR": str(settings.data_dir),
        "INTERVIEWER_WARM_VECTORS": "false",
        "INTERVIEWER_LLM_MODEL": "",
    }
    log = (tmp_path / "app.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "app", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    break
        except OSError:
            if process.poll() is not None:
                pytest.fail((tmp_path / "app.log").read_text()[-3000:])
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("the app did not become healthy within 120 s")
    yield url
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def test_answer_one_question_in_a_real_browser(running_app: str, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is not installed: run `make system-deps` (CI does)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh, empty profile
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        page = context.new_page()
        page.goto(running_app)
        page.get_by_role("button", name="Start interview").click(timeout=90_000)
        box = page.locator('[data-testid="stChatInput"] textarea')
        box.wait_for(timeout=90_000)
        page.screenshot(path=str(ARTIFACTS / "browser-question.png"))
        box.fill(
            "I'd cap in-flight calls with an asyncio.Semaphore, put asyncio.timeout around each "
            "call, and retry 429 and 5xx with exponential backoff and jitter, honouring "
            "Retry-After. A TaskGroup cancels the siblings; I never swallow CancelledError."
        )
        box.press("Enter")
        card = page.locator('[data-testid="stMetric"]').filter(has_text="Score")
        card.first.wait_for(timeout=90_000)
        assert "/ 5" in card.first.inner_text()
        assert page.get_by_text("Missed:").count() + page.get_by_text("Graded by offline").count()
        card.first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-feedback.png"))
        context.close()
    assert (ARTIFACTS / "browser-feedback.png").stat().st_size > 10_000
