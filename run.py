"""Start the HETA Lite app: `python run.py [--host H] [--port P] [--model NAME] [--no-browser]`.

The model loads in the background (the page says so); model work runs on the job queue's
worker thread, never on the event loop.
"""
from __future__ import annotations

import argparse
import os
import sys

from nicegui import ui

from heta_lite.quantization.modes import ACCEPTED, QUANT_MODES

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="HETA Lite app")
    p.add_argument("--host", default="127.0.0.1", help="bind address (desktop default 127.0.0.1; 0.0.0.0 in Docker)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--fd", type=int, default=None,
                   help="serve on this inherited, already listening socket instead of binding --host/--port "
                        "(socket activation; the tests use it to get a port without a bind-and-release race)")
    p.add_argument("--model", default="auto", help="smollm2-135m, qwen2.5-3b, a hub id or a folder (default auto)")
    p.add_argument("--quant", default="none", choices=ACCEPTED, metavar="MODE",
                   help=f"bitsandbytes quantization of the primary model: {', '.join(QUANT_MODES)} (4bit = 4bit-nf4)")
    p.add_argument("--max-models", type=int, default=2,
                   help="models (or quantization modes) kept loaded at once; the least recently used goes first")
    p.add_argument("--quality", default="fast", choices=["fast", "balanced", "accurate"], help="default preset")
    p.add_argument("--device", default=None)
    p.add_argument("--concurrency", type=int, default=1, help="model jobs at once (default 1 per GPU)")
    p.add_argument("--max-queued", type=int, default=16)
    p.add_argument("--time-limit", type=float, default=600.0, help="per-job time limit in seconds")
    p.add_argument("--cache-dir", default=None, help="diskcache folder, or 'off'")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--rate-limit", type=float, default=30.0, help="API requests per minute per client")
    p.add_argument("--client-jobs", type=int, default=2, help="API jobs running or queued per client")
    p.add_argument("--trusted-proxy", action="append", default=None,
                   help="address/network whose X-Forwarded-For is believed (default: loopback, i.e. Caddy)")
    p.add_argument("--plain-logs", action="store_true", help="human-readable logs instead of JSON lines")
    return p.parse_args(argv)


def is_desktop(host: str) -> bool:
    """Desktop mode: the server is bound to loopback only, so the person at the machine owns it (the
    page then lets a directly connected user change models without the admin token)."""
    return host.strip().lower() in LOOPBACK


def open_browser(args: argparse.Namespace, environ=None, platform: str | None = None) -> bool:
    """Open a browser tab unless --no-browser, and never on a headless machine (no X11/Wayland
    display); Windows and macOS always have one."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    has_display = bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")) or platform in ("win32", "darwin")
    return not args.no_browser and has_display


def main(argv=None) -> None:
    args = parse_args(argv)
    from gui.serving.telemetry import setup_logging

    setup_logging(json_logs=not args.plain_logs)
    from gui.app import register
    from gui.serving.ratelimit import Limits
    from gui.state import AppState
    from heta_lite.jobs import JobQueue

    cache = None
    if args.cache_dir != "off":
        from heta_lite.cache import HetaCache

        cache = HetaCache(args.cache_dir)
    if args.max_models < 1:
        sys.exit("run.py: --max-models must be >= 1")
    # Desktop mode (bound to loopback): the GUI lets a user connected directly (not through a proxy)
    # switch models without the admin token; the API always needs the token.
    state = AppState(model_name=args.model, quantization=args.quant, default_quality=args.quality,
                     max_models=args.max_models, desktop=is_desktop(args.host),
                     queue=JobQueue(concurrency=args.concurrency, max_queued=args.max_queued,
                                    time_limit_s=args.time_limit), cache=cache)
    state.start_loading(args.device)
    limits = Limits(requests_per_minute=args.rate_limit, concurrent_jobs=args.client_jobs,
                    trusted_proxies=tuple(args.trusted_proxy or ("127.0.0.1", "::1")))
    register(state, limits)
    # --fd: uvicorn serves the inherited socket; NiceGUI's banner would name --port, which isn't used
    extra = {"fd": args.fd, "show_welcome_message": False} if args.fd is not None else {}
    ui.run(host=args.host, port=args.port, title="HETA Lite", reload=False, show=open_browser(args), favicon="🔥",
           **extra)


if __name__ in {"__main__", "__mp_main__"}:
    main()
