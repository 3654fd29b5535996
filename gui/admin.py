"""Who may change models: the admin token check (API admin routes and the page's model panel
use this one function) and the desktop owner rule of the page."""
from __future__ import annotations

import hmac
import ipaddress
import os

from heta_lite.errors import HetaError


class AdminDenied(HetaError):
    """An admin action without the right token (403; `code` says which case)."""

    code = "forbidden"
    http_status = 403

    def __init__(self, message: str, code: str = "forbidden"):
        super().__init__(message)
        self.code = code


def check_admin(token_given: str | None) -> AdminDenied | None:
    """None if HETA_LITE_ADMIN_TOKEN is set and `token_given` matches it (constant time). Compared
    as UTF-8 bytes: `compare_digest` refuses str with non-ASCII characters (TypeError, a 500), and a
    header arrives as whatever bytes the client sent (latin-1 decoded by the server)."""
    token = os.environ.get("HETA_LITE_ADMIN_TOKEN")
    if not token:
        return AdminDenied("Admin actions are disabled: set HETA_LITE_ADMIN_TOKEN to enable them.", "admin_disabled")
    given = (token_given or "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, token.encode("utf-8", "surrogateescape")):
        return AdminDenied("Wrong or missing X-Admin-Token.")
    return None


def direct_local(request) -> bool:
    """True when the page request came straight from this machine (not through a proxy)."""
    if request is None or request.client is None or request.headers.get("x-forwarded-for"):
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return request.client.host in ("localhost", "testclient")
