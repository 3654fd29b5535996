"""The app server's settings, declared once (heta_lite/options.py): run.py's flags are generated
from these fields, and `ServerSettings(...)` validates them with the same messages as every
other knob (a bad --max-models is refused before anything starts)."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from heta_lite.options import add_arguments, check_options, option
from heta_lite.quantization.modes import ACCEPTED, QUANT_MODES
from heta_lite.settings import QUALITIES


@dataclass(frozen=True)
class ServerSettings:
    host: str = option("127.0.0.1", help="bind address (desktop default 127.0.0.1; 0.0.0.0 in Docker)")
    port: int = option(8080, low=1, high=65535, help="TCP port")
    fd: int | None = option(None, low=0, help="serve on this inherited, already listening socket instead of binding "
                            "--host/--port (socket activation; the tests use it to get a port without a "
                            "bind-and-release race)")
    model: str = option("auto", help="smollm2-135m, qwen2.5-3b, a hub id or a folder (auto: qwen2.5-3b on a CUDA GPU, "
                        "smollm2-135m otherwise)")
    quant: str = option("none", choices=ACCEPTED, metavar="MODE",
                        help=f"bitsandbytes quantization of the primary model: {', '.join(QUANT_MODES)} (4bit = 4bit-nf4)")
    max_models: int = option(2, low=1, high=64,
                             help="models (or quantization modes) kept loaded at once; the least recently used goes first")
    quality: str = option("fast", choices=QUALITIES, help="the page's default preset")
    device: str | None = option(None, help="cpu, cuda, cuda:1 (default: cuda if present)")
    concurrency: int = option(1, low=1, high=64, help="model jobs at once (default 1 per GPU)")
    max_queued: int = option(16, low=1, high=10_000, help="jobs waiting at most; more are refused (503 queue_full)")
    time_limit: float = option(600.0, low=0, low_open=True, high=86400, help="per-job time limit in seconds")
    cache_dir: str | None = option(None, help="diskcache folder, or 'off'")
    no_browser: bool = option(False, help="do not open a browser")
    rate_limit: float = option(30.0, low=0, low_open=True, help="API requests per minute per client")
    client_jobs: int = option(2, low=1, help="jobs running or queued per client (API and page alike)")
    trusted_proxy: list[str] | None = option(None, multiple=True, metavar="ADDR",
                                             help="address/network whose X-Forwarded-For is believed (default: "
                                             "loopback, i.e. Caddy); the one trust decision: uvicorn's own "
                                             "proxy-header handling uses the same list")
    allowed_host: list[str] | None = option(None, multiple=True, metavar="HOST",
                                            help="desktop mode: a further Host name the app answers to (loopback "
                                            "names, the bind address and $HETA_SITE's host are always allowed; "
                                            "any other Host is refused)")
    plain_logs: bool = option(False, help="human-readable logs instead of JSON lines")

    def __post_init__(self) -> None:
        check_options(self)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="HETA Lite app", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(p, ServerSettings, defaults={f.name: f.default for f in dataclasses.fields(ServerSettings)})
    return p
