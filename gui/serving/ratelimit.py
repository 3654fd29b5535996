"""Per-client limits: a token bucket for request rate and a cap on concurrent jobs.

The client is the socket address; only when the request comes from a configured trusted proxy
(Caddy) is X-Forwarded-For believed, and then read from the right: the rightmost address that is
not itself a trusted proxy is the client. A proxy that appends to a header the client sent
("spoofed, real") thus still yields the real address, and a client that talks to the app
directly can't pick its identity by sending the header itself.

The bucket's clock is injectable (`RateLimiter(limits, clock=...)`, default `time.monotonic`) so
that refill and Retry-After arithmetic can be tested without sleeping.

Buckets are kept per `bucket_key`: an IPv4 address, or the /64 network of an IPv6 address (one
host usually owns a whole /64, so rotating addresses inside it buys no fresh tokens). Memory is
bounded: a bucket that has refilled to the burst is the same as no bucket and is dropped when the
limiter prunes (every `prune_every_s` of clock time, or when `max_clients` is reached); past
`max_clients` the least recently used go first. Clients whose jobs have all finished are dropped
from the job table the same way.
"""
from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
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


def bucket_key(client: str) -> str:
    """The rate-limit identity of a client address: IPv4 as is (an IPv4-mapped IPv6 address as its
    IPv4), IPv6 as its /64 network; anything else (no address) as is."""
    try:
        addr = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


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
    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic, max_clients: int = 50_000,
                 prune_every_s: float = 60.0):
        self.limits = limits
        self.clock = clock
        self.max_clients = max_clients
        self.prune_every_s = prune_every_s
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # least recently used first
        self._active: dict[str, set[str]] = {}
        self._alive: Callable[[str], bool] | None = None
        self._lock = threading.Lock()
        self._pruned = clock()

    def take(self, client: str, n: int = 1) -> float:
        """0 if the request may go ahead (`n` tokens are used: a batch takes one per item), else
        seconds until enough are available (nothing is used). A new client starts with `burst`
        tokens; tokens come back at `requests_per_minute / 60` per second, up to `burst`.

        A request that needs more than the burst (a batch of 16 items against a burst of 10) can
        never be covered in one go: it goes ahead only with a full bucket and leaves it in debt
        (below zero), so the client still pays one token per item, by waiting longer afterwards."""
        n = max(1, int(n))
        rate = self.limits.requests_per_minute / 60.0
        key = bucket_key(client)
        with self._lock:
            now = self.clock()
            self._maybe_prune(now)
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(tokens=float(self.limits.burst), updated=now)
            else:
                self._buckets.move_to_end(key)
            b.tokens = min(float(self.limits.burst), b.tokens + max(0.0, now - b.updated) * rate)
            b.updated = now
            need = max(1.0, min(float(n), float(self.limits.burst)))  # burst 0: nothing, as before
            if b.tokens >= need - 1e-9:  # float refill slack: a retry at the promised second succeeds
                b.tokens -= n
                return 0.0
            return (need - b.tokens) / rate if rate > 0 else 60.0

    def start_job(self, client: str, job_id: str, alive) -> bool:
        """Register a job for `client` unless it already has `concurrent_jobs` unfinished ones."""
        key = bucket_key(client)
        with self._lock:
            self._alive = alive
            jobs = {j for j in self._active.get(key, set()) if alive(j)}
            if len(jobs) >= self.limits.concurrent_jobs:
                self._active[key] = jobs
                return False
            jobs.add(job_id)
            self._active[key] = jobs
            return True

    def active_jobs(self, client: str, alive) -> int:
        key = bucket_key(client)
        with self._lock:
            jobs = {j for j in self._active.get(key, set()) if alive(j)}
            if jobs:
                self._active[key] = jobs
            else:
                self._active.pop(key, None)
            return len(jobs)

    @property
    def tracked_clients(self) -> int:
        """Buckets plus job-table entries held now (what pruning bounds)."""
        with self._lock:
            return len(self._buckets) + len(self._active)

    def prune(self) -> None:
        with self._lock:
            self._prune(self.clock())

    def _maybe_prune(self, now: float) -> None:
        if now - self._pruned >= self.prune_every_s or len(self._buckets) >= self.max_clients:
            self._prune(now)

    def _prune(self, now: float) -> None:
        """Drop buckets that are full again (as good as new) and clients without live jobs; then,
        past `max_clients`, the least recently used buckets. Called with the lock held."""
        self._pruned = now
        rate = self.limits.requests_per_minute / 60.0
        burst = float(self.limits.burst)
        full = [k for k, b in self._buckets.items() if b.tokens + max(0.0, now - b.updated) * rate >= burst]
        for k in full:
            del self._buckets[k]
        while len(self._buckets) >= self.max_clients:
            self._buckets.popitem(last=False)
        if self._alive is not None:
            alive = self._alive
            for k in [k for k, jobs in self._active.items() if not any(alive(j) for j in jobs)]:
                del self._active[k]
