"""End to end in a real browser: Debian's chromium driven by Playwright against run.py on a
loopback port, on the offline model. Screenshots go to the test's temporary folder, or to the
folder named by HETA_TEST_ARTIFACTS when set (CI keeps them from there); never into the repository.

Needs `apt-get install -y chromium` and `pip install playwright` (no `playwright install`: we
use the system chromium); skipped with the reason when either is missing.
"""
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import private_home_env

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
                 if p and os.path.exists(p)), None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover
    sync_playwright = None

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium"),
    pytest.mark.skipif(sync_playwright is None, reason="needs the playwright package: pip install playwright"),
]


@pytest.fixture(scope="module")
def server(request):
    """$HETA_E2E_URL when set (scripts/docker_ci.sh: the Docker image behind Caddy), else run.py here."""
    return os.environ.get("HETA_E2E_URL") or request.getfixturevalue("live_server").url


@pytest.fixture
def artifacts(tmp_path) -> Path:
    """Where screenshots go: $HETA_TEST_ARTIFACTS if set, else this test's temporary folder."""
    folder = Path(os.environ["HETA_TEST_ARTIFACTS"]) if os.environ.get("HETA_TEST_ARTIFACTS") else tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_explain_in_the_browser(server, tmp_path, artifacts):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, env=private_home_env(tmp_path / "home"))
        page = browser.new_page(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
        page.goto(server)
        page.wait_for_selector("text=smollm2-135m", timeout=120_000)  # model loaded
        page.get_by_role("textbox", name="Prompt", exact=True).fill("The capital of France is")
        page.locator("#generate").click()
        page.wait_for_selector("text=Target:", timeout=120_000)
        # click a prompt token (teacher-forced target: ' France' predicted from 'The capital of')
        page.locator("button.tok-chip").filter(has_text="France").first.click()
        page.wait_for_selector("text=prompt token at position", timeout=10_000)
        page.screenshot(path=str(artifacts / "tokens.png"), full_page=True)
        page.locator("#explain").click()
        try:
            page.wait_for_selector(".heta-heatmap", timeout=180_000)
        except Exception:
            page.screenshot(path=str(artifacts / "explain-timeout.png"), full_page=True)
            raise
        # hover a token: its tooltip (CSS ::after from data-tip) shows the numbers
        tok = page.locator(".heta-heatmap .heta-tok").filter(has_text="capital").first
        tok.hover()
        shown = tok.evaluate("el => getComputedStyle(el, '::after').content")
        assert "percentile" in shown, shown
        pct = float(shown.split("percentile ")[1].split(" ")[0])
        assert 0 <= pct <= 100
        page.screenshot(path=str(artifacts / "explain-hover.png"))
        with page.expect_download() as dl:
            page.get_by_role("button", name="Download JSON report").click()
        path = tmp_path / "report.json"
        dl.value.save_as(path)
        from heta_lite.report import validate_report

        report = json.loads(path.read_text())
        validate_report(report)
        assert report["target"]["display"] == "␣France" and report["target"]["mode"] == "position"
        capital = next(t for t in report["tokens"] if t["display"] == "␣capital")
        assert round(capital["percentile"]) == round(pct)  # the page shows what the report says
        page.get_by_text("Explore: next token, logit lens, attention and heads").click()
        page.wait_for_selector("text=what the model would predict next", timeout=60_000)
        page.get_by_role("button", name="Show attention").click()
        page.wait_for_function("document.querySelectorAll('.heta-heatmap').length >= 2", timeout=60_000)
        page.get_by_text("Memory", exact=True).click()
        page.wait_for_selector("text=Process RSS", timeout=10_000)
        page.wait_for_timeout(2500)  # the expansion's animation and a second memory sample, for the screenshot
        page.screenshot(path=str(artifacts / "explain.png"), full_page=True)
        browser.close()
