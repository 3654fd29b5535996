"""The real Caddy (Debian's package) in front of the real app on loopback: the repo's
Caddyfile validates, and the API, the security headers, the body cap and the page's websocket
all work through the proxy. In front of a stub upstream (no model, fast): /metrics is never
proxied, the CSP and (over TLS only) HSTS are sent."""
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
CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "Caddyfile"
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


def _caddyfile_args(port: int, env: dict, log_dir: Path) -> tuple[list[str], dict]:
    return ["--config", str(CADDYFILE), "--adapter", "caddyfile"], {**env, "HETA_SITE": f":{port}"}


def _tls_args(port: int, env: dict, log_dir: Path) -> tuple[list[str], dict]:
    """The Caddyfile for `https://localhost:PORT` (Caddy's internal CA), adapted to JSON only to
    keep the test from touching the machine: no CA install into the system trust store, no
    HTTP->HTTPS redirect listener on port 80."""
    import json

    env = {**env, "HETA_SITE": f"https://localhost:{port}"}
    out = subprocess.run([CADDY, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"], env=env,
                         capture_output=True, text=True, check=True)
    cfg = json.loads(out.stdout)
    cfg["apps"].setdefault("pki", {}).setdefault("certificate_authorities", {}).setdefault("local", {})[
        "install_trust"] = False
    for srv in cfg["apps"]["http"]["servers"].values():
        srv.setdefault("automatic_https", {})["disable_redirects"] = True
    path = log_dir / f"caddy-tls-{port}.json"
    path.write_text(json.dumps(cfg))
    return ["--config", str(path)], env


def _start_caddy(env: dict, log_dir: Path, attempts: int = 5, config=_caddyfile_args) -> tuple[subprocess.Popen, int]:
    """Caddy on a port it really owns: a port taken by someone else between the choice and Caddy's
    bind makes Caddy exit, and we try another, rather than testing whatever answers there."""
    for i in range(attempts):
        port = _candidate_port()
        log = open(log_dir / f"caddy-{i}.log", "w")
        args, run_env = config(port, env, log_dir)
        proc = subprocess.Popen([CADDY, "run", *args], env=run_env, stdout=log, stderr=subprocess.STDOUT)
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
    assert httpx.get(proxy + "/metrics").status_code == 404  # not through the proxy ...
    assert httpx.get(proxy + "/openapi.json").json()["paths"]["/api/v1/explain"]
    assert "content-security-policy" in httpx.get(proxy + "/").headers


@needs_caddy
def test_metrics_are_served_to_the_machine_itself(live_server):
    """... but scraped directly from the app (loopback or compose's network)."""
    r = httpx.get(live_server.url + "/metrics")
    assert r.status_code == 200 and "heta_requests_total" in r.text


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
        csp_errors = []
        page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(proxy)
        # the model label is filled in by a timer over the websocket: seeing it proves the upgrade works
        page.wait_for_selector("text=smollm2-135m", timeout=60_000)
        page.get_by_role("textbox", name="Prompt", exact=True).fill("Hi")
        page.get_by_role("button", name="Generate").click()
        page.wait_for_selector("text=Target:", timeout=120_000)
        browser.close()
    assert csp_errors == []  # Caddy's CSP lets the whole page work (scripts, styles, websocket)


@needs_caddy
def test_a_client_cannot_choose_its_rate_limit_identity_through_caddy(proxy, live_server):
    """Caddy replaces X-Forwarded-For with the real peer and the app believes only Caddy's: a client
    sending its own header is still itself (here the loopback test client), not the address it sent."""
    import json

    import time

    r = httpx.get(proxy + "/api/v1/health", headers={"x-forwarded-for": "203.0.113.77"})
    rid = r.headers["x-request-id"]

    def lines():
        return [json.loads(x) for x in live_server.log().splitlines() if x.startswith("{") and rid in x]

    deadline = time.monotonic() + 30  # the access line is written after the response: wait for it, bounded
    while not lines() and time.monotonic() < deadline:
        time.sleep(0.1)
    found = lines()
    assert len(found) == 1 and found[0]["client"] == "127.0.0.1"


# -- in front of a stub upstream (no model) -------------------------------------------------------
class _Stub:
    """A tiny HTTP upstream on loopback that answers 200 to everything and records each path."""

    def __init__(self):
        import http.server
        import threading

        seen = self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                seen.append(self.path)
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _wait_up(url: str, **kw) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=5, **kw)
            return
        except httpx.HTTPError:
            time.sleep(0.1)  # poll interval
    raise RuntimeError(f"{url} did not answer")


@pytest.fixture(scope="module")
def stub_proxy(tmp_path_factory):
    stub = _Stub()
    env = {**private_home_env(tmp_path_factory.mktemp("caddy-stub-home")), "HETA_UPSTREAM": f"127.0.0.1:{stub.port}"}
    proc, port = _start_caddy(env, tmp_path_factory.mktemp("caddy-stub-logs"))
    url = f"http://127.0.0.1:{port}"
    _wait_up(url + "/api/v1/health")
    yield url, stub
    proc.terminate()
    proc.wait(10)
    stub.close()


@needs_caddy
@pytest.mark.parametrize("path", ["/metrics", "/METRICS", "/Metrics", "/metrics/", "/metrics?x=1", "/%6Detrics",
                                  "/metrics/../metrics", "/./metrics"])
def test_metrics_are_not_proxied(stub_proxy, path):
    """Before: /metrics was public through Caddy. Every spelling Caddy (or the app behind it) could
    resolve to /metrics is answered by Caddy itself and never reaches the upstream."""
    url, stub = stub_proxy
    before = len(stub.paths)
    r = httpx.get(url + path)
    assert r.status_code == 404
    assert not any("etrics" in p.lower() for p in stub.paths[before:]), stub.paths[before:]


@needs_caddy
def test_the_rest_is_proxied_with_csp_and_no_hsts_over_plain_http(stub_proxy):
    url, stub = stub_proxy
    r = httpx.get(url + "/api/v1/health")
    assert r.status_code == 200 and "/api/v1/health" in stub.paths
    csp = r.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    # what NiceGUI's page needs (Vue's run-time template compiler, inline scripts and styles, its
    # websocket back to the same host) and no more: nothing from other hosts
    assert directives["default-src"] == ["'self'"] and directives["frame-ancestors"] == ["'none'"]
    assert set(directives["script-src"]) == {"'self'", "'unsafe-inline'", "'unsafe-eval'"}
    host = url.split("//", 1)[1]
    assert set(directives["connect-src"]) == {"'self'", f"ws://{host}", f"wss://{host}"}
    assert directives["object-src"] == ["'none'"]
    assert not any(s.startswith("http") for d in directives.values() for s in d)
    assert "strict-transport-security" not in r.headers
    docs = httpx.get(url + "/docs")  # FastAPI's docs load Swagger UI from jsDelivr: allowed there only
    assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]


@needs_caddy
def test_hsts_over_tls(tmp_path):
    stub = _Stub()
    env = {**private_home_env(tmp_path / "home"), "HETA_UPSTREAM": f"127.0.0.1:{stub.port}"}
    (tmp_path / "logs").mkdir()
    proc, port = _start_caddy(env, tmp_path / "logs", config=_tls_args)
    try:
        url = f"https://localhost:{port}"
        _wait_up(url + "/api/v1/health", verify=False)
        r = httpx.get(url + "/api/v1/health", verify=False)
        assert r.status_code == 200
        assert r.headers["strict-transport-security"].startswith("max-age=")
        assert int(r.headers["strict-transport-security"].split("=")[1].split(";")[0]) >= 15552000  # 180 days
        assert "content-security-policy" in r.headers
    finally:
        proc.terminate()
        proc.wait(10)
        stub.close()
