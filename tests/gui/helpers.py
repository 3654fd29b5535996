"""What the page tests share: poll a condition on the event loop, and the one element with a marker."""
from __future__ import annotations

import asyncio
import time


async def until(cond, timeout: float = 120.0) -> None:
    """Poll `cond` every 0.1 s on the event loop (the page's timers keep running) until it holds;
    TimeoutError after `timeout` s (generous: a cold first load can take minutes on CI)."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError
        await asyncio.sleep(0.1)


def one(user, marker: str):
    """The (first) visible element carrying `marker`."""
    return next(iter(user.find(marker=marker).elements))
