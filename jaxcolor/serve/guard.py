"""What every request of the studio passes before it reaches a route: `Guard`.

  * Host check, on a loopback bind: the Host header must name this machine (localhost,
    127.0.0.1, ::1, or the bound address). A page of another site whose name an attacker
    points at 127.0.0.1 (DNS rebinding) would otherwise be same-origin with the studio and
    could read its answers; with the check it gets 400.
  * Origin: a request that says it comes from a page of another origin (its Origin header
    names another host than its Host) is refused with 403. Browsers keep such a page from
    reading the answer anyway; refusing it also keeps it from spending the machine's
    compute on a local studio it found.
  * Token: when one is set, every `/api/` request must carry `Authorization: Bearer TOKEN`
    (401 otherwise, compared in constant time). The page is public (it holds no secret); it
    reads the token from its URL's fragment, which browsers never send to a server or put in
    a Referer. A bind beyond loopback always has a token (`resolve_token`).
  * Headers on every answer: a Content-Security-Policy that lets the page load nothing from
    anywhere but this server (so it works offline, and an injected script could not call
    out), no MIME sniffing, no Referer, no framing. No CORS header is ever sent: browsers keep
    other origins from reading the API.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jaxcolor.errors import UsageError

CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                           "base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-resource-policy", b"same-origin")]
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server to this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token: str | None) -> str | None:
    """The token the server checks: `token` if given, a new random one for a bind beyond
    loopback (the URL printed carries it), else None (loopback: no token)."""
    if token is not None:
        if len(token) < 8 or not token.isprintable() or " " in token:
            raise UsageError("--token must be at least 8 printable characters, no spaces")
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(24)


def allowed_hosts(host: str) -> frozenset[str] | None:
    """The Host names a server bound to `host` answers: this machine's, on loopback; any
    otherwise (the token guards a wider bind)."""
    return LOOPBACK_NAMES | {host.strip("[]").lower()} if is_loopback(host) else None


def json_error(message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    """The API's one error shape: `{"error": message}` with its HTTP status."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _hostname(header: str) -> str:
    """The host part of a Host header ("[::1]:8080" -> "::1", "localhost:80" -> "localhost")."""
    if header.startswith("["):
        return header[1:header.find("]")]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware for the checks and headers of the module docstring."""

    def __init__(self, app: ASGIApp, *, token: str | None, hosts: frozenset[str] | None):
        self.app, self.token, self.hosts = app, token, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  *SECURITY_HEADERS]}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self.hosts is not None and _hostname(host).lower() not in self.hosts:
            return json_error("unknown Host header: open the studio at the address "
                              "`jaxcolor serve` printed", 400)
        origin = headers.get("origin")
        if origin is not None and origin.partition("://")[2].rstrip("/").lower() != host.lower():
            return json_error("a page of another origin may not use the studio", 403)
        if self.token is None or not scope["path"].startswith("/api/"):
            return None
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                             self.token.encode()):
            return None
        missing = "missing" if not given else "wrong"
        return json_error(f"{missing} token: open the studio with the URL `jaxcolor serve` "
                          "printed (it carries the token)", 401,
                          {"WWW-Authenticate": 'Bearer realm="jaxcolor"'})
