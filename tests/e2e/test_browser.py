"""End to end in a real browser: Debian's chromium driven by Playwright against run.py on a
loopback port, on the offline model. Saves a screenshot under test-artifacts/."""
import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover
    sync_playwright = None


@pytest.fixture(scope="module")
def server(live_server):
    return live_server.url


@pytest.mark.skipif(CHROMIUM is None or sync_playwright is None,
                    reason="needs Debian's chromium and the playwright package (.ci/run installs both)")
def test_explain_in_the_browser(server, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
        page.goto(server)
        page.wait_for_selector("text=smollm2-135m", timeout=120_000)  # model loaded
        page.get_by_role("textbox", name="Prompt", exact=True).fill("The capital of France is")
        page.get_by_role("button", name="Generate").click()
        page.wait_for_selector("text=Target:", timeout=120_000)
        # click the last prompt token (teacher-forced target: ' is' predicted from 'The capital of France')
        chip = page.locator("button.tok-chip").filter(has_text="France")
        chip.first.click()
        page.wait_for_selector("text=prompt token at position", timeout=10_000)
        page.get_by_role("button", name="Explain").click()
        page.wait_for_selector(".heta-heatmap", timeout=180_000)
        tok = page.locator(".heta-heatmap .heta-tok").filter(has_text="capital").first
        tok.hover()
        title = tok.get_attribute("title")
        assert "percentile" in title
        pct = float(title.split("percentile ")[1].split(",")[0])
        assert 0 <= pct <= 100
        with page.expect_download() as dl:
            page.get_by_role("button", name="Download JSON report").click()
        path = tmp_path / "report.json"
        dl.value.save_as(path)
        from heta_lite.report import validate_report

        report = json.loads(path.read_text())
        validate_report(report)
        assert report["target"]["display"] == "␣France"
        page.screenshot(path=str(ARTIFACTS / "explain.png"), full_page=True)
        browser.close()
