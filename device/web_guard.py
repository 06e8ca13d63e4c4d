"""The web page's request safety: who may ask, the CSRF token, and what a request body may be.

With a token file (required for a non-local bind) every request needs the token: a cookie after ``/login``,
or ``Authorization: Bearer``; without one the ``Host`` header must name this machine (no DNS rebinding).
Every POST needs the page's CSRF token (``X-CSRF-Token``) and a small JSON body. Secrets are compared in
constant time; a wrong login waits a second.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from urllib.parse import parse_qs

from device.errors import WebError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
PUBLIC = ("/login", "/app.css", "/app.js")  # no secrets in these: the login page needs them
SESSION_COOKIE = "digitcam_session"
MAX_BODY = 4096  # the largest write (an ROI, a value) is well under 200 bytes


class Guard:
    """The checks of one server: its token (may be empty), bind address, CSRF token and session cookie."""

    def __init__(self, token: str, bind: str):
        self.token = token or ""
        self.bind = bind
        self.csrf = secrets.token_urlsafe(32)
        self.session = hmac.new(self.token.encode(), b"digitcam-web-session", "sha256").hexdigest() if self.token else ""

    def authorized(self, headers) -> bool:
        if not self.token:
            return True
        auth = headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), self.token.encode()):
            return True
        for part in headers.get("Cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == SESSION_COOKIE and hmac.compare_digest(value.encode(), self.session.encode()):
                return True
        return False

    def host_ok(self, headers) -> bool:
        """Without a token, only a Host naming this machine (a rebinding DNS name must not reach the page)."""
        if self.token:
            return True
        host = headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in LOOPBACK_HOSTS or name == self.bind

    def csrf_ok(self, headers) -> bool:
        return hmac.compare_digest(headers.get("X-CSRF-Token", "").encode(), self.csrf.encode())

    def login_cookie(self, token: str) -> str:
        """The session cookie for the right token; a wrong one (or no token file) waits, then WebError 403."""
        if not self.token or not hmac.compare_digest(token.encode(), self.token.encode()):
            time.sleep(1.0)  # a guesser gets one try a second per connection slot
            raise WebError(403, "wrong token")
        return f"{SESSION_COOKIE}={self.session}; HttpOnly; SameSite=Strict; Path=/"


def read_body(headers, rfile) -> dict:
    """A request's body: a JSON object (or a login form), at most ``MAX_BODY`` bytes; else WebError."""
    length = headers.get("Content-Length")
    if length is None or not length.isdigit():
        raise WebError(411, "a Content-Length is needed")
    if int(length) > MAX_BODY:
        raise WebError(413, f"a body of at most {MAX_BODY} bytes")
    raw = rfile.read(int(length))
    kind = headers.get("Content-Type", "").split(";")[0].strip()
    if kind == "application/x-www-form-urlencoded":
        return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    if kind != "application/json":
        raise WebError(415, "send application/json")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise WebError(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise WebError(400, "the body must be a JSON object")
    return data
