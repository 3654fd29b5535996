"""Issue #18, the edge of the server, each test an attack that worked before:

- DNS rebinding: a page on attacker.example (resolving to 127.0.0.1) talks to a desktop install
  with `Host: attacker.example` -> refused (400), page, API and websocket alike;
- cross-site websocket: a page of another origin opens NiceGUI's socket.io websocket (or its
  long-polling) -> refused (403);
- a chunked 10 MB body (no Content-Length) -> 413 having kept at most the 64 KiB limit and read
  at most DRAIN_BYTES (1 MiB, discarded) more, never the whole body;
- a non-ASCII X-Admin-Token -> 403, not a 500;
- X-Forwarded-For from a peer that is not a --trusted-proxy -> ignored by uvicorn too (one trust
  decision), so a client can't choose the address it is logged and limited as;
- /docs and /openapi.json exist (the API's 404 message points there).

In process (FastAPI + TestClient, raw ASGI) where that is enough; the real run.py (NiceGUI,
uvicorn, socket.io) without a model for what only the real server stack shows.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gui.serving import register_api
from gui.serving.middleware import (ApiGuard, HostOriginGuard, desktop_hosts, install_host_guard, same_origin,
                                    split_host)
from gui.serving.schemas import MAX_BODY_BYTES
from gui.serving.telemetry import Metrics
from gui.state import AppState
from heta_lite.jobs import JobQueue

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def unloaded():
    st = AppState(model_name="smollm2-135m", queue=JobQueue())  # never loaded
    yield st
    st.queue.shutdown()


def _app(state, allowed_hosts=None) -> FastAPI:
    app = FastAPI()
    register_api(app, state)
    install_host_guard(app, allowed_hosts)
    return app


# -- Host and Origin, unit ------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1:8080", ("127.0.0.1", "8080")), ("LOCALHOST", ("localhost", "")), ("[::1]:80", ("::1", "80")),
    ("[::1]", ("::1", "")), ("example.org.", ("example.org", "")), ("a:b:c", ("", "")), ("[::1", ("", "")),
    ("x:port", ("", "")), ("evil@127.0.0.1", ("", "")), ("", ("", "")), ("127.0.0.1/x", ("", "")),
])
def test_split_host(value, expected):
    assert split_host(value) == expected


@pytest.mark.parametrize("origin, host, ok", [
    ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
    ("https://heta.example.org", "heta.example.org", True),          # TLS at Caddy: no port either side
    ("https://heta.example.org", "heta.example.org:443", True),
    ("http://heta.example.org", "heta.example.org", True),
    ("http://evil.example", "127.0.0.1:8080", False),
    ("http://127.0.0.1:9999", "127.0.0.1:8080", False),               # another local page (other port)
    ("http://localhost:8080", "127.0.0.1:8080", False),               # another origin, same machine
    ("null", "127.0.0.1:8080", False),                                # sandboxed frame / file:
    ("file://", "127.0.0.1:8080", False),
    ("http://127.0.0.1:8080", "", False),
])
def test_same_origin(origin, host, ok):
    assert same_origin(origin, host) is ok


def test_desktop_hosts_are_loopback_names_bind_address_and_site():
    assert desktop_hosts("127.0.0.1", ["heta.example.org:443", ""]) == (
        "localhost", "127.0.0.1", "::1", "heta.example.org")


# -- DNS rebinding, in process --------------------------------------------------------------------
def test_a_forged_host_is_refused_in_desktop_mode(unloaded):
    app = _app(unloaded, desktop_hosts("127.0.0.1"))
    with TestClient(app, base_url="http://attacker.example:8080") as c:
        r = c.get("/api/v1/health")
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_host"
        r = c.post("/api/v1/admin/models", json={"model": "x"}, headers={"x-admin-token": "t"})
        assert r.status_code == 400
    for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080"):
        with TestClient(app, base_url=f"http://{host}") as c:
            assert c.get("/api/v1/health").status_code == 503  # let through: not loaded yet


def test_any_host_is_served_when_not_in_desktop_mode(unloaded):
    with TestClient(_app(unloaded, None), base_url="http://heta.lan:8080") as c:
        assert c.get("/api/v1/health").status_code == 503


def test_websocket_with_a_forged_host_or_origin_is_refused():
    """Raw ASGI: a websocket scope reaches the inner app only with an allowed Host and its own
    Origin (or none)."""
    reached = []

    async def inner(scope, receive, send):
        reached.append(scope["type"])
        await send({"type": "websocket.accept"})

    guard = HostOriginGuard(inner, desktop_hosts("127.0.0.1"))

    def handshake(headers: dict) -> list[dict]:
        sent: list[dict] = []

        async def receive():
            return {"type": "websocket.connect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "websocket", "path": "/_nicegui_ws/socket.io/", "scheme": "ws",
                 "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
        asyncio.run(guard(scope, receive, send))
        return sent

    assert handshake({"host": "attacker.example:8080", "origin": "http://attacker.example:8080"}) == [
        {"type": "websocket.close", "code": 1008}]
    assert handshake({"host": "127.0.0.1:8080", "origin": "http://evil.example"})[0]["type"] == "websocket.close"
    assert reached == []
    assert handshake({"host": "127.0.0.1:8080", "origin": "http://127.0.0.1:8080"}) == [{"type": "websocket.accept"}]
    assert handshake({"host": "127.0.0.1:8080"}) == [{"type": "websocket.accept"}]  # no browser, no Origin
    assert reached == ["websocket", "websocket"]


# -- streamed body cap ----------------------------------------------------------------------------
def test_a_chunked_10_mb_body_is_refused_after_reading_at_most_the_limit(unloaded):
    """Raw ASGI, as uvicorn hands a chunked body over: 10 MB in 16 KiB chunks, no Content-Length.
    The guard answers 413 having pulled at most the limit plus DRAIN_BYTES; the route never runs."""
    from gui.serving.middleware import DRAIN_BYTES

    chunk = b"x" * 16384
    total = 10 * 1024 * 1024
    pulled = {"bytes": 0, "messages": 0, "at_answer": None}

    async def receive():
        pulled["messages"] += 1
        if pulled["bytes"] >= total:
            return {"type": "http.disconnect"}
        pulled["bytes"] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": pulled["bytes"] < total}

    sent: list[dict] = []

    async def send(message):
        if message["type"] == "http.response.start":
            pulled["at_answer"] = pulled["bytes"]
        sent.append(message)

    routed = []

    async def inner(scope, receive, send):
        routed.append(scope["path"])

    guard = ApiGuard(inner, Metrics(), lambda request: "127.0.0.1")
    scope = {"type": "http", "method": "POST", "path": "/api/v1/explain", "raw_path": b"/api/v1/explain",
             "query_string": b"", "root_path": "", "scheme": "http", "server": ("127.0.0.1", 8080),
             "client": ("127.0.0.1", 5000), "http_version": "1.1",
             "headers": [(b"host", b"127.0.0.1:8080"), (b"transfer-encoding", b"chunked"),
                         (b"content-type", b"application/json")]}
    asyncio.run(guard(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert start["status"] == 413 and body["error"]["code"] == "body_too_large"
    assert routed == []
    # at most DRAIN_BYTES past the limit read (and thrown away: see drain), then the answer; the
    # rest of the 10 MB is never read. Before: all 10 MB were read and buffered first.
    assert pulled["at_answer"] == pulled["bytes"]
    assert pulled["bytes"] <= MAX_BODY_BYTES + DRAIN_BYTES + 2 * len(chunk) < total // 8


def test_a_body_under_the_limit_still_reaches_the_route_and_disconnects_pass_through(unloaded):
    """The guard replays the body it read, then hands over the real receive (a route watching for
    the client's disconnect still sees it)."""
    seen = []

    async def inner(scope, receive, send):
        seen.append(await receive())
        seen.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    messages = [{"type": "http.request", "body": b'{"a":', "more_body": True},
                {"type": "http.request", "body": b" 1}", "more_body": False}, {"type": "http.disconnect"}]

    async def receive():
        return messages.pop(0)

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/x", "raw_path": b"/api/v1/x", "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 5000),
             "http_version": "1.1", "headers": [(b"host", b"127.0.0.1:8080")]}
    asyncio.run(ApiGuard(inner, Metrics(), lambda request: "127.0.0.1")(scope, receive, send))
    assert seen == [{"type": "http.request", "body": b'{"a": 1}', "more_body": False}, {"type": "http.disconnect"}]
    assert sent[0]["status"] == 204 and (b"x-request-id", sent[0]["headers"][-1][1]) in sent[0]["headers"]


def test_a_declared_large_body_is_refused_without_reading(unloaded):
    with TestClient(_app(unloaded)) as c:
        r = c.post("/api/v1/explain", content=b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}",
                   headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        assert "x-request-id" in r.headers


# -- admin token ----------------------------------------------------------------------------------
@pytest.mark.parametrize("token", ["é".encode("utf-8"), b"\xff\xfe", "tökén".encode("utf-8")])
def test_a_non_ascii_admin_token_is_403_not_500(unloaded, monkeypatch, token):
    monkeypatch.setenv("HETA_LITE_ADMIN_TOKEN", "s3cret-token")
    with TestClient(_app(unloaded), raise_server_exceptions=False) as c:
        r = c.get("/api/v1/admin/models", headers={"x-admin-token": token})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
        assert c.get("/api/v1/admin/models", headers={"x-admin-token": "s3cret-token"}).status_code == 200


def test_a_non_ascii_configured_token_still_works(monkeypatch):
    from gui.admin import check_admin

    monkeypatch.setenv("HETA_LITE_ADMIN_TOKEN", "jeton-été")
    assert check_admin("jeton-été") is None
    assert check_admin("jeton-ete") is not None and check_admin("jeton-été".encode().decode("latin-1")) is not None


# -- run.py's options -----------------------------------------------------------------------------
def test_run_py_hands_its_proxy_trust_to_uvicorn():
    import run

    opts = run.server_options(run.parse_args(["--trusted-proxy", "10.0.0.2", "--trusted-proxy", "fd00::2"]))
    assert opts["proxy_headers"] is True and opts["forwarded_allow_ips"] == "10.0.0.2,fd00::2"
    assert run.server_options(run.parse_args([]))["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert opts["log_config"] is None and opts["fastapi_docs"]


def test_run_py_allowed_hosts():
    import run

    assert run.allowed_hosts(run.parse_args(["--host", "0.0.0.0"]), environ={}) is None
    hosts = run.allowed_hosts(run.parse_args(["--allowed-host", "box.local"]),
                              environ={"HETA_SITE": "https://heta.example.org"})
    assert set(hosts) == {"localhost", "127.0.0.1", "::1", "box.local", "heta.example.org"}
    assert "attacker.example" not in hosts


# -- the real server (run.py, NiceGUI, uvicorn), no model -----------------------------------------
@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """run.py on an inherited loopback socket (desktop mode), with a model folder that does not
    exist (health 503 at once) and a trusted proxy that is not loopback, so X-Forwarded-For from
    this test (a loopback peer) must be ignored everywhere."""
    from tests.conftest import listening_socket

    tmp = tmp_path_factory.mktemp("edge")
    sock = listening_socket()
    port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")} | {"PYTHONUNBUFFERED": "1"}
    env.pop("HETA_SITE", None)
    log_path = tmp / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "run.py", "--no-browser", "--fd", str(sock.fileno()), "--model",
                                 str(tmp / "no-such-model-folder"), "--cache-dir", "off",
                                 "--trusted-proxy", "10.9.9.9"],
                                pass_fds=[sock.fileno()], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    sock.close()
    try:
        # the request waits in the socket's backlog until the server runs
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=180)
        assert r.status_code == 503, log_path.read_text()[-2000:]
        yield {"port": port, "url": f"http://127.0.0.1:{port}", "log": log_path}
    finally:
        proc.terminate()
        proc.wait(30)


def test_real_server_refuses_a_rebinding_host(real_server):
    port = real_server["port"]
    for path in ("/", "/api/v1/health", "/api/v1/admin/models", "/_nicegui_ws/socket.io/?EIO=4&transport=polling"):
        r = httpx.get(real_server["url"] + path, headers={"host": f"attacker.example:{port}"}, timeout=30)
        assert r.status_code == 400, (path, r.status_code)
    assert httpx.get(real_server["url"] + "/", headers={"host": f"localhost:{port}"}, timeout=60).status_code == 200


def _ws_handshake(port: int, host: str, origin: str | None) -> int:
    """The HTTP status of a websocket handshake to NiceGUI's socket.io (101: upgraded)."""
    import socket

    lines = ["GET /_nicegui_ws/socket.io/?EIO=4&transport=websocket HTTP/1.1", f"Host: {host}",
             "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "Sec-WebSocket-Version: 13"] + ([f"Origin: {origin}"] if origin else [])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            data = s.recv(4096)
            if not data:
                break
            head += data
    return int(head.split(b" ", 2)[1])


def test_real_server_websocket_checks_origin(real_server):
    port = real_server["port"]
    assert _ws_handshake(port, f"127.0.0.1:{port}", "http://evil.example") == 403
    assert _ws_handshake(port, f"127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}") == 403
    assert _ws_handshake(port, f"attacker.example:{port}", f"http://attacker.example:{port}") == 403
    assert _ws_handshake(port, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}") == 101  # the page itself
    r = httpx.get(real_server["url"] + "/_nicegui_ws/socket.io/?EIO=4&transport=polling",
                  headers={"origin": "http://evil.example"}, timeout=30)
    assert r.status_code == 403


def test_real_server_ignores_forwarded_for_from_an_untrusted_peer(real_server):
    """--trusted-proxy 10.9.9.9: this loopback client is not a proxy, so neither uvicorn nor the
    limiter may take the address it sends (uvicorn's default trusts 127.0.0.1 on its own)."""
    r = httpx.get(real_server["url"] + "/api/v1/health", headers={"x-forwarded-for": "203.0.113.9"}, timeout=30)
    rid = r.headers["x-request-id"]
    lines = _log_lines(real_server["log"], rid)
    assert len(lines) == 1 and lines[0]["client"] == "127.0.0.1", lines


def _log_lines(path: Path, rid: str, timeout: float = 30.0) -> list[dict]:
    """The server's JSON log lines with request id `rid`: the line is written just after the
    response went out, so poll until it is there (or the deadline passes)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{") and rid in x]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)  # poll interval; the loop ends when the line appears


def test_real_server_streamed_body_cap(real_server):
    """A chunked body through uvicorn: the 413 arrives while the client is still sending, long
    before 10 MB went out (the server stopped reading ~1 MiB past the limit)."""
    import select
    import socket

    port = real_server["port"]
    chunk = b"x" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall((f"POST /api/v1/explain HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n").encode())
        answer = b""
        while sent < 10 * 1024 * 1024:
            readable, _, _ = select.select([s], [], [], 0)
            if readable:
                break
            try:
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(chunk)
        s.settimeout(30)
        while b"\r\n\r\n" not in answer:
            data = s.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 10 * 1024 * 1024


def test_real_server_has_api_docs(real_server):
    spec = httpx.get(real_server["url"] + "/openapi.json", timeout=30)
    assert spec.status_code == 200 and "/api/v1/explain" in spec.json()["paths"]
    assert not any(p.startswith("/_nicegui") for p in spec.json()["paths"])
    docs = httpx.get(real_server["url"] + "/docs", timeout=30)
    assert docs.status_code == 200 and "openapi.json" in docs.text
    nf = httpx.get(real_server["url"] + "/api/v1/nope", timeout=30)
    assert nf.status_code == 404 and "/docs" in nf.json()["error"]["message"]


def test_compose_trusts_only_the_caddy_container():
    """Before: `--trusted-proxy 172.16.0.0/12`, every address of every Docker bridge network, so
    any other container on the host could set X-Forwarded-For and pick the client it is limited
    as. Now: one address, Caddy's fixed address on the compose network, inside that network."""
    import ipaddress
    import re

    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())

    def sub(v: str) -> str:
        return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", v)

    cmd = [sub(a) for a in compose["services"]["app"]["command"]]
    trusted = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--trusted-proxy"]
    caddy_net = compose["services"]["caddy"]["networks"]
    (net_name, net), = caddy_net.items()
    caddy_ip = ipaddress.ip_address(sub(net["ipv4_address"]))
    subnet = ipaddress.ip_network(sub(compose["networks"][net_name]["ipam"]["config"][0]["subnet"]))
    assert [ipaddress.ip_network(t).num_addresses for t in trusted] == [1]
    assert ipaddress.ip_address(trusted[0]) == caddy_ip and caddy_ip in subnet
    assert net_name in compose["services"]["app"]["networks"]


def test_real_server_a_client_that_sends_its_whole_body_first_still_reads_its_413(real_server):
    """httpx (like most clients) writes the whole body before reading: the server reads and discards
    what follows the limit (bounded), so the client gets the 413, not a connection reset."""
    for body in (b'{"prompt": "' + b"a" * 1_000_000 + b'"}',):
        r = httpx.post(real_server["url"] + "/api/v1/explain", content=body,
                       headers={"content-type": "application/json"}, timeout=60)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

        def chunks():
            for i in range(0, len(body), 65536):
                yield body[i:i + 65536]

        r = httpx.post(real_server["url"] + "/api/v1/explain", content=chunks(),
                       headers={"content-type": "application/json"}, timeout=60)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_a_deeply_nested_body_is_a_4xx_not_a_500(unloaded):
    """The guard looks for the prompt in the body it read (to keep it out of the logs): JSON nested
    too deep for the parser must not escape as a 500 from there."""
    with TestClient(_app(unloaded), raise_server_exceptions=False) as c:
        r = c.post("/api/v1/explain", content=b"[" * 5000 + b"]" * 5000, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500 and r.json()["error"]["code"], r.text
