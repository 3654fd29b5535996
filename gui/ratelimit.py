"""Per-client limits: a token bucket for request rate and a cap on concurrent jobs.

The client is the socket address, or the first X-Forwarded-For entry only when the request
comes from a configured trusted proxy (Caddy): a client can't spoof its identity by sending
the header itself.
"""
from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Limits:
    requests_per_minute: float = 30.0
    burst: int = 10
    concurrent_jobs: int = 2
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")


def client_id(peer: str | None, forwarded_for: str | None, trusted: tuple[str, ...]) -> str:
    peer = peer or "unknown"
    if forwarded_for and _is_trusted(peer, trusted):
        first = forwarded_for.split(",")[0].strip()
        try:
            return str(ipaddress.ip_address(first))
        except ValueError:
            return peer
    return peer


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
    updated: float = field(default_factory=time.monotonic)


class RateLimiter:
    def __init__(self, limits: Limits):
        self.limits = limits
        self._buckets: dict[str, _Bucket] = {}
        self._active: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 if the request may go ahead, else seconds until a token is available."""
        rate = self.limits.requests_per_minute / 60.0
        with self._lock:
            b = self._buckets.setdefault(client, _Bucket(tokens=float(self.limits.burst)))
            now = time.monotonic()
            b.tokens = min(float(self.limits.burst), b.tokens + (now - b.updated) * rate)
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
