"""One HTTP request driven at the ASGI level, for tests where the client's connection matters
(a client that goes away, streams held open). TestClient and httpx's ASGITransport read the whole
response before returning, so neither can hold a stream open or hang up in the middle."""
from __future__ import annotations

import asyncio
import json


class AsgiCall:
    def __init__(self, app, method: str, path: str, body: bytes | dict = b"", headers: dict | None = None,
                 client: tuple[str, int] = ("198.51.100.9", 5000)) -> None:
        self.app = app
        self.body = json.dumps(body).encode() if isinstance(body, dict) else body
        hdrs = {"host": "testserver", "content-type": "application/json", "content-length": str(len(self.body)),
                **(headers or {})}
        self.scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                      "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
                      "query_string": b"", "root_path": "", "client": client, "server": ("testserver", 80),
                      "headers": [(k.lower().encode(), v.encode()) for k, v in hdrs.items()]}
        self._body_sent = False
        self._gone = asyncio.Event()
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.started = asyncio.Event()  # the response's status line was sent
        self.chunks: list[bytes] = []
        self.got_chunk = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def _receive(self) -> dict:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self._gone.wait()  # after the body, a client says nothing until it hangs up
        return {"type": "http.disconnect"}

    async def _send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
            self.started.set()
        elif message["type"] == "http.response.body" and message.get("body"):
            self.chunks.append(message["body"])
            self.got_chunk.set()

    def start(self) -> "AsgiCall":
        self.task = asyncio.ensure_future(self.app(self.scope, self._receive, self._send))
        return self

    def disconnect(self) -> None:
        self._gone.set()

    async def finished(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(asyncio.shield(self.task), timeout)

    def json(self):
        return json.loads(b"".join(self.chunks))

    def text(self) -> str:
        return b"".join(self.chunks).decode()
