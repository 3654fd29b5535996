"""Start the HETA Lite app: `python run.py [--host H] [--port P] [--model NAME] [--no-browser]`.

The model loads in the background (the page says so); model work runs on the job queue's
worker thread, never on the event loop.
"""
from __future__ import annotations

import argparse
import os
import sys

from nicegui import ui

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parse_args(argv=None) -> argparse.Namespace:
    """The flags are generated from `gui.server_settings.ServerSettings` (one declaration per
    setting); the values are validated by it, so a bad one stops here with a message."""
    from gui.server_settings import ServerSettings, parser
    from heta_lite.errors import InputError

    p = parser()
    args = p.parse_args(argv)
    try:
        ServerSettings(**vars(args))
    except InputError as err:
        p.error(f"--{(err.field or '').replace('_', '-')}: {err}")
    return args


def is_desktop(host: str) -> bool:
    """Desktop mode: the server is bound to loopback only, so the person at the machine owns it (the
    page then lets a directly connected user change models without the admin token)."""
    return host.strip().lower() in LOOPBACK


def trusted_proxies(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(args.trusted_proxy or ("127.0.0.1", "::1"))


def allowed_hosts(args: argparse.Namespace, environ=None) -> tuple[str, ...] | None:
    """Desktop mode: the Host names the app answers to (a DNS-rebinding page sends its own name and
    is refused); None (any Host) for a server bound to a LAN address or behind Caddy."""
    from gui.serving.middleware import desktop_hosts

    if not is_desktop(args.host):
        return None
    environ = os.environ if environ is None else environ
    site = (environ.get("HETA_SITE") or "").strip()
    site_host = site.split("://", 1)[-1].split("/", 1)[0]  # "https://x.org:443/" -> "x.org:443"
    return desktop_hosts(args.host, [*(args.allowed_host or ()), *([site_host] if site_host else [])])


def server_options(args: argparse.Namespace) -> dict:
    """What run.py passes to ui.run (and so to uvicorn) besides host and port:
    - one proxy trust decision: uvicorn rewrites the client address from X-Forwarded-For only for
      --trusted-proxy peers, the same list the rate limiter uses (uvicorn's default would trust
      $FORWARDED_ALLOW_IPS or 127.0.0.1 on its own);
    - `log_config=None`: uvicorn's loggers go through the app's privacy filter and formatter
      instead of uvicorn's handlers, which print exception messages;
    - FastAPI's docs of the API at /docs and /openapi.json."""
    opts = {"proxy_headers": True, "forwarded_allow_ips": ",".join(trusted_proxies(args)), "log_config": None,
            "fastapi_docs": {"title": "HETA Lite API", "version": "1",
                             "description": "Explain one LLM prediction; see docs/serving.md."}}
    if args.fd is not None:  # uvicorn serves the inherited socket; NiceGUI's banner would name --port
        opts.update(fd=args.fd, show_welcome_message=False)
    return opts


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
    # Desktop mode (bound to loopback): the GUI lets a user connected directly (not through a proxy)
    # switch models without the admin token; the API always needs the token.
    state = AppState(model_name=args.model, quantization=args.quant, default_quality=args.quality,
                     max_models=args.max_models, desktop=is_desktop(args.host),
                     queue=JobQueue(concurrency=args.concurrency, max_queued=args.max_queued,
                                    time_limit_s=args.time_limit), cache=cache)
    state.start_loading(args.device)
    limits = Limits(requests_per_minute=args.rate_limit, concurrent_jobs=args.client_jobs,
                    trusted_proxies=trusted_proxies(args))
    register(state, limits, allowed_hosts=allowed_hosts(args))
    ui.run(host=args.host, port=args.port, title="HETA Lite", reload=False, show=open_browser(args), favicon="🔥",
           **server_options(args))


if __name__ in {"__main__", "__mp_main__"}:
    main()
