"""The real Caddy (Debian's package) in front of the real app on loopback: the repo's
Caddyfile validates, and the API, the security headers, the body cap and the page's websocket
all work through the proxy."""
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import private_home_env

pytestmark = pytest.mark.slow
CADDY = shutil.which("caddy")
CADDYFILE = Path(__file__).resolve().parents[1] / "deploy" / "Caddyfile"
needs_caddy = pytest.mark.skipif(CADDY is None, reason="needs Debian's caddy (.ci/run installs it)")


def _candidate_port() -> int:
    """A port that was free a moment ago. Only a candidate: Caddy can't take an inherited socket,
    so `_start_caddy` checks that Caddy itself ends up listening on it and tries another if not."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listens_on(proc: subprocess.Popen, port: int, timeout: float = 30.0) -> bool:
    """True once `proc` (not some other process) listens on `port`; False if it exits first
    (address in use) or the deadline passes."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            conns = psutil.Process(proc.pid).net_connections(kind="tcp")
        except psutil.Error:
            return False
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns):
            return True
        time.sleep(0.1)  # poll interval; the loop ends on what the process does
    return False


def _start_caddy(env: dict, log_dir: Path, attempts: int = 5) -> tuple[subprocess.Popen, int]:
    """Caddy on a port it really owns: a port taken by someone else between the choice and Caddy's
    bind makes Caddy exit, and we try another, rather than testing whatever answers there."""
    for i in range(attempts):
        port = _candidate_port()
        log = open(log_dir / f"caddy-{i}.log", "w")
        proc = subprocess.Popen([CADDY, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                                env={**env, "HETA_SITE": f":{port}"}, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if _listens_on(proc, port):
            return proc, port
        proc.terminate()
        proc.wait(10)
    raise RuntimeError("caddy did not start: " + (log_dir / f"caddy-{attempts - 1}.log").read_text()[-2000:])


@pytest.fixture(scope="module")
def proxy(live_server, tmp_path_factory):
    env = {**private_home_env(tmp_path_factory.mktemp("caddy-home")), "HETA_UPSTREAM": f"127.0.0.1:{live_server.port}"}
    proc, port = _start_caddy(env, tmp_path_factory.mktemp("caddy-logs"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/v1/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.25)  # poll interval
    yield url
    proc.terminate()
    proc.wait(10)


@needs_caddy
def test_caddyfile_validates(tmp_path):
    env = {**private_home_env(tmp_path), "HETA_SITE": ":8088", "HETA_UPSTREAM": "127.0.0.1:8080"}
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
def test_page_and_websocket_through_caddy(proxy, tmp_path):
    chromium = shutil.which("chromium")
    pw = pytest.importorskip("playwright.sync_api")
    if chromium is None:
        pytest.skip("needs Debian's chromium")
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"], env=private_home_env(tmp_path))
        page = browser.new_page()
        page.goto(proxy)
        # the model label is filled in by a timer over the websocket: seeing it proves the upgrade works
        page.wait_for_selector("text=smollm2-135m", timeout=60_000)
        page.get_by_role("textbox", name="Prompt", exact=True).fill("Hi")
        page.get_by_role("button", name="Generate").click()
        page.wait_for_selector("text=Target:", timeout=120_000)
        browser.close()


@needs_caddy
def test_a_client_cannot_choose_its_rate_limit_identity_through_caddy(proxy, live_server):
    """Caddy replaces X-Forwarded-For with the real peer and the app believes only Caddy's: a client
    sending its own header is still itself (here the loopback test client), not the address it sent."""
    import json

    r = httpx.get(proxy + "/api/v1/health", headers={"x-forwarded-for": "203.0.113.77"})
    rid = r.headers["x-request-id"]
    lines = [json.loads(x) for x in live_server.log().splitlines() if x.startswith("{") and rid in x]
    assert len(lines) == 1 and lines[0]["client"] == "127.0.0.1"
