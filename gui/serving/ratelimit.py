"""Per-client limits: a token bucket for request rate and a cap on concurrent jobs.

The client is the socket address; only when the request comes from a configured trusted proxy
(Caddy) is X-Forwarded-For believed, and then read from the right: the rightmost address that is
not itself a trusted proxy is the client. A proxy that appends to a header the client sent
("spoofed, real") thus still yields the real address, and a client that talks to the app
directly can't pick its identity by sending the header itself.

The bucket's clock is injectable (`RateLimiter(limits, clock=...)`, default `time.monotonic`) so
that refill and Retry-After arithmetic can be tested without sleeping.
"""
from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class Limits:
    requests_per_minute: float = 30.0
    burst: int = 10
    concurrent_jobs: int = 2
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")


def client_id(peer: str | None, forwarded_for: str | None, trusted: tuple[str, ...]) -> str:
    """Who sent the request: `peer` unless it is a trusted proxy with an X-Forwarded-For; then
    the rightmost forwarded address that is not a trusted proxy itself (all trusted: the
    leftmost). An unparsable entry met on the way stops the walk: the hop that handed it over
    (the last address believed) is the client."""
    peer = peer or "unknown"
    if not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    client = peer
    for entry in reversed(forwarded_for.split(",")):
        try:
            client = str(ipaddress.ip_address(entry.strip()))
        except ValueError:
            return client
        if not _is_trusted(client, trusted):
            return client
    return client


def _is_trusted(peer: str, trusted: tuple[str, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:
        return False
    for t in trusted:
        try:
            if addr in ipaddress.ip_network(t, strict=False):
                return True
        except ValueError:
            continue
    return False


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._active: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 if the request may go ahead (a token is used), else seconds until a token is
        available (nothing is used). A new client starts with `burst` tokens; tokens come back
        at `requests_per_minute / 60` per second, up to `burst`."""
        rate = self.limits.requests_per_minute / 60.0
        with self._lock:
            now = self.clock()
            b = self._buckets.get(client)
            if b is None:
                b = self._buckets[client] = _Bucket(tokens=float(self.limits.burst), updated=now)
            b.tokens = min(float(self.limits.burst), b.tokens + max(0.0, now - b.updated) * rate)
            b.updated = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) / rate if rate > 0 else 60.0

    def start_job(self, client: str, job_id: str, alive) -> bool:
        """Register a job for `client` unless it already has `concurrent_jobs` unfinished ones."""
        with self._lock:
            jobs = {j for j in self._active.get(client, set()) if alive(j)}
            if len(jobs) >= self.limits.concurrent_jobs:
                self._active[client] = jobs
                return False
            jobs.add(job_id)
            self._active[client] = jobs
            return True

    def active_jobs(self, client: str, alive) -> int:
        with self._lock:
            return sum(1 for j in self._active.get(client, set()) if alive(j))
