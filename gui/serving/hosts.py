"""The Host / Origin guard, on every request (the page's websocket and socket.io included):
refuses a Host that is not allowed (desktop mode: DNS rebinding) and a cross-origin websocket or
socket.io request. Plain ASGI, not `@app.middleware("http")`: it must see websocket handshakes,
which HTTP middleware never does. Installed on the app by gui/app.py (`install_host_guard`).
"""
from __future__ import annotations

import logging
from typing import Iterable
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error

log = logging.getLogger("heta_lite.api")

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
SOCKETIO_PREFIX = "/_nicegui_ws/"


def split_host(value: str) -> tuple[str, str]:
    """(host, port) of a Host header or an authority: lower case, IPv6 brackets removed, a trailing
    dot dropped; ('', '') when it does not parse."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/@?# \t\\"):
        return "", ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return "", ""
        host, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(":"):
            return "", ""
        port = rest[1:]
    else:
        host, _, port = value.partition(":")
        if ":" in port:
            return "", ""
    if port and not port.isdigit():
        return "", ""
    return host.rstrip("."), port


def same_origin(origin: str, host_header: str) -> bool:
    """True when the Origin header names the host and port the request was sent to (a Host without
    a port means the default port of the origin's scheme: Caddy terminating TLS forwards
    `Host: heta.example.org` for `Origin: https://heta.example.org`)."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    o_host, o_port = split_host(parts.netloc)
    h_host, h_port = split_host(host_header)
    if not o_host or not h_host:
        return False
    default = "443" if parts.scheme == "https" else "80"
    return o_host == h_host and (o_port or default) == (h_port or default)


def desktop_hosts(bind_host: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The Host names a desktop install (bound to loopback) answers to: the loopback names, the bind
    address and any configured site name (`extra`: --allowed-host, $HETA_SITE's host)."""
    import ipaddress

    out: list[str] = []
    for name in (*LOOPBACK_HOSTS, bind_host, *extra):
        name = name.strip().lower()
        try:
            host = str(ipaddress.ip_address(name.strip("[]")))  # a bare IPv6 address has colons
        except ValueError:
            host = split_host(name)[0] if name else ""
        if host and host not in out:
            out.append(host)
    return tuple(out)


class HostOriginGuard:
    """Refuses, before any route or the socket.io server sees it:

    - with `allowed_hosts` (desktop mode), a request whose Host is not one of them: a DNS-rebinding
      page (attacker.example resolving to 127.0.0.1) sends its own name as Host and gets 400;
    - a websocket handshake, or a socket.io long-polling request, from a browser page of another
      origin (its Origin header is not the host it connects to): 403. Clients that are no browser
      send no Origin and are let through; NiceGUI's own socket.io server accepts any origin.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] | None = None) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {split_host(h)[0] or h for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host_header = headers.get("host", "")
        if self.allowed is not None and split_host(host_header)[0] not in self.allowed:
            log.warning("refused host", extra={"fields": {"reason": "host not allowed", "type": scope["type"]}})
            return await _refuse(scope, receive, send, 400, "bad_host", "Invalid Host header.")
        origin = headers.get("origin")
        checked = scope["type"] == "websocket" or scope.get("path", "").startswith(SOCKETIO_PREFIX)
        if checked and origin is not None:
            if not same_origin(origin, host_header):
                log.warning("refused origin", extra={"fields": {"reason": "cross-origin", "type": scope["type"]}})
                return await _refuse(scope, receive, send, 403, "bad_origin", "Cross-origin connection refused.")
        return await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str) -> None:
    if scope["type"] == "websocket":
        # closing before accepting: the server answers the handshake with 403
        await send({"type": "websocket.close", "code": 1008})
        return
    await error(status, code, message)(scope, receive, send)


def install_host_guard(app: FastAPI, allowed_hosts: Iterable[str] | None) -> None:
    """`allowed_hosts` None: any Host (a server behind Caddy, or bound to a LAN address); the Origin
    check of websockets and socket.io applies either way."""
    app.add_middleware(HostOriginGuard, allowed_hosts=None if allowed_hosts is None else tuple(allowed_hosts))
