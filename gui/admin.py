"""Who may change models: the admin token check (API admin routes and the page's model panel
use this one function) and the desktop owner rule of the page."""
from __future__ import annotations

import ipaddress
import os
import secrets

from heta_lite.errors import HetaError


class AdminDenied(HetaError):
    """An admin action without the right token (403; `code` says which case)."""

    code = "forbidden"
    http_status = 403

    def __init__(self, message: str, code: str = "forbidden"):
        super().__init__(message)
        self.code = code


def check_admin(token_given: str | None) -> AdminDenied | None:
    """None if HETA_LITE_ADMIN_TOKEN is set and `token_given` matches it (constant time)."""
    token = os.environ.get("HETA_LITE_ADMIN_TOKEN")
    if not token:
        return AdminDenied("Admin actions are disabled: set HETA_LITE_ADMIN_TOKEN to enable them.", "admin_disabled")
    if not secrets.compare_digest(token_given or "", token):
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
