"""The real Caddy (Debian's package) in front of the real app on loopback: the repo's
Caddyfile validates, and the API, the security headers, the body cap and the page's websocket
all work through the proxy."""
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
CADDY = shutil.which("caddy")
CADDYFILE = Path(__file__).resolve().parents[1] / "deploy" / "Caddyfile"
needs_caddy = pytest.mark.skipif(CADDY is None, reason="needs Debian's caddy (.ci/run installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def proxy(live_server, tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "HETA_SITE": f":{port}", "HETA_UPSTREAM": f"127.0.0.1:{live_server.port}",
           "XDG_DATA_HOME": str(tmp_path_factory.mktemp("caddy")), "HOME": str(tmp_path_factory.mktemp("home"))}
    proc = subprocess.Popen([CADDY, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(60):
        try:
            httpx.get(url + "/api/v1/health", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.25)
    yield url
    proc.terminate()
    proc.wait(10)


@needs_caddy
def test_caddyfile_validates():
    env = {**os.environ, "HETA_SITE": ":8088", "HETA_UPSTREAM": "127.0.0.1:8080"}
    r = subprocess.run([CADDY, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@needs_caddy
def test_api_and_headers_through_caddy(proxy):
    r = httpx.get(proxy + "/api/v1/health")
    assert r.status_code == 200 and r.json()["model_loaded"]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    r = httpx.post(proxy + "/api/v1/explain", timeout=120,
                   json={"prompt": "The capital of France is", "target": {"position": 4, "chat": False}})
    assert r.status_code == 200 and r.json()["schema"] == "heta-lite/report/v1"
    mid = httpx.post(proxy + "/api/v1/explain", content=b"x" * 400_000, headers={"content-type": "application/json"})
    assert mid.status_code == 413 and mid.json()["error"]["code"] == "body_too_large"  # the app's cap, via Caddy
    big = httpx.post(proxy + "/api/v1/explain", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
    assert big.status_code == 413  # Caddy's own cap
    assert httpx.get(proxy + "/api/v1/health").status_code == 200


@needs_caddy
def test_page_and_websocket_through_caddy(proxy):
    chromium = shutil.which("chromium")
    pw = pytest.importorskip("playwright.sync_api")
    if chromium is None:
        pytest.skip("needs Debian's chromium")
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.goto(proxy)
        # the model label is filled in by a timer over the websocket: seeing it proves the upgrade works
        page.wait_for_selector("text=smollm2-135m", timeout=60_000)
        page.get_by_role("textbox", name="Prompt", exact=True).fill("Hi")
        page.get_by_role("button", name="Generate").click()
        page.wait_for_selector("text=Target:", timeout=120_000)
        browser.close()
