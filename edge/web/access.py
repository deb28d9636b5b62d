"""Who may use the server. Framework-free checks the application applies to every request:

- A token, when the server has one (it must when it listens beyond this machine): in an
  `Authorization: Bearer` header, an `X-Microexp-Token` header, a `token` query parameter (a
  kiosk's start URL) or the cookie the server sets after a valid one. Compared in constant time.
- Without a token (loopback only), the Host header must name this machine, so a web page that
  rebinds its own DNS name to 127.0.0.1 cannot read the server.
- A browser's Origin, when sent, must be the server itself (a sandboxed page's 'null' is not):
  another site's page cannot upload or open the live stream through a visitor's browser."""
from __future__ import annotations

import hmac
import ipaddress
from typing import Mapping, Optional
from urllib.parse import urlsplit

COOKIE = "microexp_token"
TOKEN_ENV = "MICROEXP_TOKEN"
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token(token: Optional[str]) -> Optional[str]:
    """The token, or ValueError when one is given but too short to resist guessing."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the token must be at least {MIN_TOKEN_LENGTH} characters (it is {len(token)}); "
                         "for example: python3 -c 'import secrets; print(secrets.token_urlsafe(24))'")
    return token


def _host_name(value: str) -> str:
    """'localhost:8000' -> 'localhost', '[::1]:8000' -> '::1'."""
    return urlsplit("//" + value).hostname or ""


class Access:
    def __init__(self, token: Optional[str]):
        self.token = check_token(token)

    def presented(self, headers: Mapping[str, str], query: Mapping[str, str], cookies: Mapping[str, str]) -> Optional[str]:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return headers.get("x-microexp-token") or query.get("token") or cookies.get(COOKIE)

    def token_ok(self, presented: Optional[str]) -> bool:
        if self.token is None:
            return True
        return presented is not None and hmac.compare_digest(presented.encode(), self.token.encode())

    def refusal(self, headers: Mapping[str, str], query: Mapping[str, str],
                cookies: Mapping[str, str]) -> Optional[tuple]:
        """(HTTP status, message) when the request may not proceed, else None."""
        if self.token is None and not is_loopback(_host_name(headers.get("host", ""))):
            return 403, "this server answers only requests addressed to this machine (localhost)"
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != headers.get("host", ""):
            return 403, "requests from another site's page are refused"
        if not self.token_ok(self.presented(headers, query, cookies)):
            return 401, "a valid token is required (?token=..., an Authorization: Bearer header or X-Microexp-Token)"
        return None
